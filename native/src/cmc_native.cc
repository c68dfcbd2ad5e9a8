// cmc_native: oneDNN convolutions, matrix products, batch normalization, max pooling and ReLU, and plain loops
// for the SGD step and float32 elementwise ops, gathers, scatters and slices, for the tfjs `native` backend
// (train/kernels/native/).
//
// One file over 500 lines on purpose: every kernel shares the per-shape plan cache, the N-API argument
// checks and the thread setting below, and the addon is one translation unit for node-gyp (binding.gyp).
//
// The JS side hands us Float32Array views on the wasm backend's heap, so the kernels read and write tfjs
// tensors in place. Tensors are NHWC with HWIO filters (tfjs's layouts); oneDNN takes those as user
// memory formats and we let it pick its own (blocked) layouts, reordering to and from them around each
// call (convolutions, matmuls); the memory-bound primitives run on the user layouts directly. Creating a
// oneDNN primitive costs far more than running a small one, so primitives, reorders and their scratch
// buffers are cached per shape.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& Engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& Stream() {
  static dnnl::stream s(Engine());
  return s;
}

// One operand of a cached primitive: the user's memory (pointer set per call) and, when the primitive
// wants another layout, its own buffer and the reorder between the two.
struct Operand {
  memory user;
  memory prim;
  dnnl::reorder reorder;  // user->prim for inputs, prim->user for outputs; empty when layouts agree
  bool reordered = false;

  void Init(const memory::desc& user_md, const memory::desc& prim_md, bool is_input) {
    user = memory(user_md, Engine(), DNNL_MEMORY_NONE);
    if (user_md == prim_md) {
      prim = user;
      return;
    }
    reordered = true;
    prim = memory(prim_md, Engine());
    reorder = is_input ? dnnl::reorder(user, prim) : dnnl::reorder(prim, user);
  }
};

struct Plan {
  dnnl::primitive prim;
  int in_args[2];
  int out_arg;
  Operand in[2];
  Operand out;

  void Run(float* in0, float* in1, float* out_ptr) {
    auto& s = Stream();
    float* in_ptr[2] = {in0, in1};
    std::unordered_map<int, memory> args;
    for (int i = 0; i < 2; i++) {
      in[i].user.set_data_handle(in_ptr[i]);
      if (in[i].reordered) in[i].reorder.execute(s, in[i].user, in[i].prim);
      args.emplace(in_args[i], in[i].prim);
    }
    out.user.set_data_handle(out_ptr);
    args.emplace(out_arg, out.prim);
    prim.execute(s, args);
    if (out.reordered) out.reorder.execute(s, out.prim, out.user);
    s.wait();
  }
};

std::unordered_map<std::string, std::unique_ptr<Plan>>& Cache() {
  static std::unordered_map<std::string, std::unique_ptr<Plan>> c;
  return c;
}

// A chain of primitives that read and write the caller's buffers in their own (plain) layouts, plus
// scratch memories of their own (a max-pooling workspace). Each step lists (argument, memory) pairs;
// a memory whose slot is >= 0 takes the call's buffer of that index.
struct DirectPlan {
  struct Step {
    dnnl::primitive prim;
    std::vector<std::pair<int, memory>> args;
    std::vector<int> slots;  // per arg: the buffer index, or -1 for an owned scratch memory
  };
  std::vector<Step> steps;

  void Run(float* const* bufs) {
    auto& s = Stream();
    for (auto& st : steps) {
      std::unordered_map<int, memory> args;
      for (size_t i = 0; i < st.args.size(); i++) {
        if (st.slots[i] >= 0) st.args[i].second.set_data_handle(bufs[st.slots[i]]);
        args.emplace(st.args[i].first, st.args[i].second);
      }
      st.prim.execute(s, args);
    }
    s.wait();
  }
};

// Memory-bound primitives on maps below this many values run on one thread. Their passes take well under
// a millisecond there, and their implementations synchronise threads (oneDNN's jit batch norm has several
// barriers per call): on a busy machine a descheduled second thread stalls each barrier for a scheduler
// tick, which made a [32,512] batch norm take 16 ms instead of 0.07 ms on one thread.
constexpr int64_t kOneThreadBelow = int64_t{1} << 20;

// Limits OpenMP (hence oneDNN) to one thread on this (the calling) thread while it lives.
class OneThread {
 public:
  explicit OneThread(bool on) : saved_(on ? omp_get_max_threads() : 0) {
    if (on) omp_set_num_threads(1);
  }
  ~OneThread() {
    if (saved_ > 0) omp_set_num_threads(saved_);
  }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int saved_;
};

std::unordered_map<std::string, std::unique_ptr<DirectPlan>>& DirectCache() {
  static std::unordered_map<std::string, std::unique_ptr<DirectPlan>> c;
  return c;
}

// An argument on a caller's buffer: a memory without data, whose handle Run sets on each call.
std::pair<int, memory> UserArg(int arg, const memory::desc& md) { return {arg, memory(md, Engine(), DNNL_MEMORY_NONE)}; }

// Activations stay NHWC unless CMC_NATIVE_ACT_LAYOUT=any lets oneDNN choose (and pay reorders).
bool ActivationsAny() {
  static const bool any = [] {
    const char* v = std::getenv("CMC_NATIVE_ACT_LAYOUT");
    return v != nullptr && std::strcmp(v, "any") == 0;
  }();
  return any;
}

enum ConvKind { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

// p: N, IH, IW, IC, OH, OW, OC, KH, KW, SH, SW, DH, DW, PT, PL, PB, PR (tfjs conventions: dilation 1 = none).
std::unique_ptr<Plan> MakeConvPlan(int kind, const int64_t* p) {
  const memory::dim N = p[0], IH = p[1], IW = p[2], IC = p[3], OH = p[4], OW = p[5], OC = p[6], KH = p[7], KW = p[8];
  const memory::dims strides = {p[9], p[10]}, dilates = {p[11] - 1, p[12] - 1}, pad_l = {p[13], p[14]}, pad_r = {p[15], p[16]};
  const memory::desc x_user({N, IC, IH, IW}, dt::f32, tag::nhwc);
  const memory::desc w_user({OC, IC, KH, KW}, dt::f32, tag::hwio);
  const memory::desc y_user({N, OC, OH, OW}, dt::f32, tag::nhwc);
  const tag act = ActivationsAny() ? tag::any : tag::nhwc;
  const memory::desc x_any({N, IC, IH, IW}, dt::f32, act);
  const memory::desc w_any({OC, IC, KH, KW}, dt::f32, tag::any);
  const memory::desc y_any({N, OC, OH, OW}, dt::f32, act);
  const auto algo = dnnl::algorithm::convolution_direct;
  const auto prop = kind == kForward ? dnnl::prop_kind::forward_inference : dnnl::prop_kind::forward_training;
  dnnl::convolution_forward::primitive_desc fwd(
      dnnl::convolution_forward::desc(prop, algo, x_any, w_any, y_any, strides, dilates, pad_l, pad_r), Engine());
  auto plan = std::make_unique<Plan>();
  if (kind == kForward) {
    plan->prim = dnnl::convolution_forward(fwd);
    plan->in_args[0] = DNNL_ARG_SRC;
    plan->in_args[1] = DNNL_ARG_WEIGHTS;
    plan->out_arg = DNNL_ARG_DST;
    plan->in[0].Init(x_user, fwd.src_desc(), true);
    plan->in[1].Init(w_user, fwd.weights_desc(), true);
    plan->out.Init(y_user, fwd.dst_desc(), false);
  } else if (kind == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        dnnl::convolution_backward_data::desc(algo, x_any, w_any, y_any, strides, dilates, pad_l, pad_r), Engine(), fwd);
    plan->prim = dnnl::convolution_backward_data(pd);
    plan->in_args[0] = DNNL_ARG_DIFF_DST;
    plan->in_args[1] = DNNL_ARG_WEIGHTS;
    plan->out_arg = DNNL_ARG_DIFF_SRC;
    plan->in[0].Init(y_user, pd.diff_dst_desc(), true);
    plan->in[1].Init(w_user, pd.weights_desc(), true);
    plan->out.Init(x_user, pd.diff_src_desc(), false);
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        dnnl::convolution_backward_weights::desc(algo, x_any, w_any, y_any, strides, dilates, pad_l, pad_r), Engine(), fwd);
    plan->prim = dnnl::convolution_backward_weights(pd);
    plan->in_args[0] = DNNL_ARG_SRC;
    plan->in_args[1] = DNNL_ARG_DIFF_DST;
    plan->out_arg = DNNL_ARG_DIFF_WEIGHTS;
    plan->in[0].Init(x_user, pd.src_desc(), true);
    plan->in[1].Init(y_user, pd.diff_dst_desc(), true);
    plan->out.Init(w_user, pd.diff_weights_desc(), false);
  }
  return plan;
}

// p: BA, BB, M, K, N, transposeA, transposeB. A is [BA, M, K] (stored [BA, K, M] when transposed), B is
// [BB, K, N] (stored [BB, N, K] when transposed); BA and BB are equal or one of them is 1 (broadcast).
std::unique_ptr<Plan> MakeMatMulPlan(const int64_t* p) {
  const memory::dim BA = p[0], BB = p[1], M = p[2], K = p[3], N = p[4];
  const bool ta = p[5] != 0, tb = p[6] != 0;
  const memory::desc a_md({BA, M, K}, dt::f32, ta ? memory::dims{M * K, 1, M} : memory::dims{M * K, K, 1});
  const memory::desc b_md({BB, K, N}, dt::f32, tb ? memory::dims{K * N, 1, K} : memory::dims{K * N, N, 1});
  const memory::desc c_md({BA > BB ? BA : BB, M, N}, dt::f32, tag::abc);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), Engine());
  auto plan = std::make_unique<Plan>();
  plan->prim = dnnl::matmul(pd);
  plan->in_args[0] = DNNL_ARG_SRC;
  plan->in_args[1] = DNNL_ARG_WEIGHTS;
  plan->out_arg = DNNL_ARG_DST;
  plan->in[0].Init(a_md, pd.src_desc(), true);
  plan->in[1].Init(b_md, pd.weights_desc(), true);
  plan->out.Init(c_md, pd.dst_desc(), false);
  return plan;
}

// Batch normalization in training mode over an NHWC map (or [N, C] as N×C×1×1), with scale and shift:
// forward y, batch mean and biased variance; backward dx, dscale, dshift from dy, x, mean, variance, scale.
// p: N, C, H, W. Forward buffers: x, scale, shift, y, mean, variance. Backward buffers: dy, x, mean,
// variance, scale, dx, dscale, dshift.
dnnl::batch_normalization_forward::primitive_desc BnForwardPd(const int64_t* p, float eps) {
  const memory::desc x_md({p[0], p[1], p[2], p[3]}, dt::f32, tag::nhwc);
  const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  return {dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_training, x_md, eps, flags), Engine()};
}

std::unique_ptr<DirectPlan> MakeBnForwardPlan(const int64_t* p, float eps) {
  const auto pd = BnForwardPd(p, eps);
  const memory::desc c_md({p[1]}, dt::f32, tag::a);
  if (pd.workspace_desc().get_size() != 0) throw std::runtime_error("batch norm forward wants a workspace");
  auto plan = std::make_unique<DirectPlan>();
  plan->steps.push_back({dnnl::batch_normalization_forward(pd),
                         {UserArg(DNNL_ARG_SRC, pd.src_desc()), UserArg(DNNL_ARG_SCALE, c_md), UserArg(DNNL_ARG_SHIFT, c_md),
                          UserArg(DNNL_ARG_DST, pd.dst_desc()), UserArg(DNNL_ARG_MEAN, pd.mean_desc()),
                          UserArg(DNNL_ARG_VARIANCE, pd.variance_desc())},
                         {0, 1, 2, 3, 4, 5}});
  return plan;
}

std::unique_ptr<DirectPlan> MakeBnBackwardPlan(const int64_t* p, float eps) {
  const auto fwd = BnForwardPd(p, eps);
  const memory::desc x_md({p[0], p[1], p[2], p[3]}, dt::f32, tag::nhwc);
  const memory::desc c_md({p[1]}, dt::f32, tag::a);
  const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  dnnl::batch_normalization_backward::primitive_desc pd(
      dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, x_md, x_md, eps, flags), Engine(), fwd);
  // oneDNN 2.6 counts the shift among the backward's inputs when use_shift is set (it does not read it):
  // without one, execution fails with invalid arguments. A scratch vector stands in.
  auto plan = std::make_unique<DirectPlan>();
  plan->steps.push_back({dnnl::batch_normalization_backward(pd),
                         {UserArg(DNNL_ARG_DIFF_DST, pd.diff_dst_desc()), UserArg(DNNL_ARG_SRC, pd.src_desc()),
                          UserArg(DNNL_ARG_MEAN, pd.mean_desc()), UserArg(DNNL_ARG_VARIANCE, pd.variance_desc()),
                          UserArg(DNNL_ARG_SCALE, c_md), UserArg(DNNL_ARG_DIFF_SRC, pd.diff_src_desc()),
                          UserArg(DNNL_ARG_DIFF_SCALE, c_md), UserArg(DNNL_ARG_DIFF_SHIFT, c_md),
                          {DNNL_ARG_SHIFT, memory(c_md, Engine())}},
                         {0, 1, 2, 3, 4, 5, 6, 7, -1}});
  return plan;
}

// The gradient of max pooling over an NHWC map. oneDNN's backward needs the forward's workspace (where
// each window's maximum was), so the plan runs the forward in training mode into scratch buffers first.
// p: N, IH, IW, C, OH, OW, KH, KW, SH, SW, PT, PL, PB, PR. Buffers: x, dy, dx.
std::unique_ptr<DirectPlan> MakeMaxPoolBackwardPlan(const int64_t* p) {
  const memory::desc x_md({p[0], p[3], p[1], p[2]}, dt::f32, tag::nhwc);
  const memory::desc y_md({p[0], p[3], p[4], p[5]}, dt::f32, tag::nhwc);
  const memory::dims kernel = {p[6], p[7]}, strides = {p[8], p[9]}, pad_l = {p[10], p[11]}, pad_r = {p[12], p[13]};
  const auto algo = dnnl::algorithm::pooling_max;
  dnnl::pooling_forward::primitive_desc fwd(
      dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training, algo, x_md, y_md, strides, kernel, pad_l, pad_r),
      Engine());
  dnnl::pooling_backward::primitive_desc bwd(dnnl::pooling_backward::desc(algo, x_md, y_md, strides, kernel, pad_l, pad_r),
                                             Engine(), fwd);
  const memory ws(fwd.workspace_desc(), Engine());
  const memory y(fwd.dst_desc(), Engine());
  auto plan = std::make_unique<DirectPlan>();
  plan->steps.push_back({dnnl::pooling_forward(fwd),
                         {UserArg(DNNL_ARG_SRC, fwd.src_desc()), {DNNL_ARG_DST, y}, {DNNL_ARG_WORKSPACE, ws}},
                         {0, -1, -1}});
  plan->steps.push_back({dnnl::pooling_backward(bwd),
                         {UserArg(DNNL_ARG_DIFF_DST, bwd.diff_dst_desc()), {DNNL_ARG_WORKSPACE, ws},
                          UserArg(DNNL_ARG_DIFF_SRC, bwd.diff_src_desc())},
                         {1, -1, 2}});
  return plan;
}

// Max pooling forward (inference: no workspace) over an NHWC map; p as MakeMaxPoolBackwardPlan. Buffers: x, y.
std::unique_ptr<DirectPlan> MakeMaxPoolForwardPlan(const int64_t* p) {
  const memory::desc x_md({p[0], p[3], p[1], p[2]}, dt::f32, tag::nhwc);
  const memory::desc y_md({p[0], p[3], p[4], p[5]}, dt::f32, tag::nhwc);
  const memory::dims kernel = {p[6], p[7]}, strides = {p[8], p[9]}, pad_l = {p[10], p[11]}, pad_r = {p[12], p[13]};
  dnnl::pooling_forward::primitive_desc pd(
      dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, x_md, y_md, strides,
                                  kernel, pad_l, pad_r),
      Engine());
  auto plan = std::make_unique<DirectPlan>();
  plan->steps.push_back(
      {dnnl::pooling_forward(pd), {UserArg(DNNL_ARG_SRC, pd.src_desc()), UserArg(DNNL_ARG_DST, pd.dst_desc())}, {0, 1}});
  return plan;
}

// ReLU over n values: forward (x -> y) or backward (dy, x -> dx, dx = dy where x > 0, else 0).
std::unique_ptr<DirectPlan> MakeReluPlan(bool backward, int64_t n) {
  const memory::desc md({n}, dt::f32, tag::a);
  const auto algo = dnnl::algorithm::eltwise_relu;
  dnnl::eltwise_forward::primitive_desc fwd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, algo, md, 0.f, 0.f), Engine());
  auto plan = std::make_unique<DirectPlan>();
  if (!backward) {
    plan->steps.push_back(
        {dnnl::eltwise_forward(fwd), {UserArg(DNNL_ARG_SRC, md), UserArg(DNNL_ARG_DST, md)}, {0, 1}});
  } else {
    dnnl::eltwise_backward::primitive_desc bwd(dnnl::eltwise_backward::desc(algo, md, md, 0.f, 0.f), Engine(), fwd);
    plan->steps.push_back({dnnl::eltwise_backward(bwd),
                           {UserArg(DNNL_ARG_DIFF_DST, md), UserArg(DNNL_ARG_SRC, md), UserArg(DNNL_ARG_DIFF_SRC, md)},
                           {0, 1, 2}});
  }
  return plan;
}

// ---- N-API glue ----

napi_value Throw(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

bool GetF32(napi_env env, napi_value v, float** data, size_t* len) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return false;
  napi_typedarray_type type;
  void* ptr = nullptr;
  napi_value ab;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, &ab, &offset) != napi_ok || type != napi_float32_array) return false;
  *data = static_cast<float*>(ptr);
  return true;
}

bool GetDims(napi_env env, napi_value v, int64_t* out, uint32_t n) {
  uint32_t len = 0;
  if (napi_get_array_length(env, v, &len) != napi_ok || len != n) return false;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    if (napi_get_element(env, v, i, &e) != napi_ok || napi_get_value_int64(env, e, &out[i]) != napi_ok) return false;
  }
  return true;
}

// The common tail of conv2d and matMul: check the three buffers against the shape, then run the cached
// plan for `key` (made by `make` on a miss).
template <typename Make>
napi_value RunCached(napi_env env, const char* name, napi_value* bufs, const int64_t want[3], const std::string& key,
                     Make make) {
  float* ptr[3];
  for (int i = 0; i < 3; i++) {
    size_t len = 0;
    if (!GetF32(env, bufs[i], &ptr[i], &len)) return Throw(env, std::string(name) + ": argument " + std::to_string(i) + " must be a Float32Array");
    if (want[i] <= 0 || static_cast<int64_t>(len) != want[i]) {
      return Throw(env, std::string(name) + ": buffer " + std::to_string(i) + " has " + std::to_string(len) +
                            " elements, the shape needs " + std::to_string(want[i]));
    }
  }
  try {
    auto& cache = Cache();
    auto it = cache.find(key);
    if (it == cache.end()) {
      if (cache.size() >= 512) cache.clear();  // tests walk many shapes; a training run uses a few dozen
      it = cache.emplace(key, make()).first;
    }
    it->second->Run(ptr[0], ptr[1], ptr[2]);
  } catch (const dnnl::error& e) {
    return Throw(env, std::string(name) + ": oneDNN: " + e.what());
  } catch (const std::exception& e) {
    return Throw(env, std::string(name) + ": " + e.what());
  }
  return nullptr;
}

std::string Key(const std::string& prefix, const int64_t* p, int n) {
  std::string key = prefix;
  for (int i = 0; i < n; i++) key += "," + std::to_string(p[i]);
  return key;
}

// conv2d(kind, in0, in1, out, dims[17]): kind 0 forward (x, w -> y), 1 backward data (dy, w -> dx),
// 2 backward weights (x, dy -> dw); dims as MakeConvPlan takes them.
napi_value Conv2d(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t kind = -1;
  int64_t p[17];
  if (argc != 5 || napi_get_value_int32(env, argv[0], &kind) != napi_ok || kind < 0 || kind > 2 || !GetDims(env, argv[4], p, 17)) {
    return Throw(env, "conv2d: expected (kind 0|1|2, Float32Array, Float32Array, Float32Array, dims[17])");
  }
  const int64_t x = p[0] * p[1] * p[2] * p[3], y = p[0] * p[4] * p[5] * p[6], w = p[7] * p[8] * p[3] * p[6];
  const int64_t want[3][3] = {{x, w, y}, {y, w, x}, {x, y, w}};
  const std::string key = Key("c" + std::to_string(kind) + (ActivationsAny() ? "a" : "n"), p, 17);
  return RunCached(env, "conv2d", argv + 1, want[kind], key, [&] { return MakeConvPlan(kind, p); });
}

// matMul(a, b, c, dims[7]): dims as MakeMatMulPlan takes them.
napi_value MatMul(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int64_t p[7];
  if (argc != 4 || !GetDims(env, argv[3], p, 7) || (p[0] != p[1] && p[0] != 1 && p[1] != 1)) {
    return Throw(env, "matMul: expected (Float32Array, Float32Array, Float32Array, [BA, BB, M, K, N, transposeA, transposeB])");
  }
  const int64_t want[3] = {p[0] * p[2] * p[3], p[1] * p[3] * p[4], (p[0] > p[1] ? p[0] : p[1]) * p[2] * p[4]};
  return RunCached(env, "matMul", argv, want, Key("m", p, 7), [&] { return MakeMatMulPlan(p); });
}

// The common part of the memory-bound kernels: `nbufs` Float32Arrays, then (when ndims > 0) an array of
// ndims integers, then (when with_eps) a number; each buffer's length must be want(dims)[i]. Runs the
// cached plan for the key made of `name`, the dims and eps (made by make(dims, eps) on a miss).
template <typename Want, typename Make>
napi_value RunDirect(napi_env env, napi_callback_info info, const char* name, size_t nbufs, uint32_t ndims,
                     bool with_eps, Want want, Make make) {
  const size_t expected = nbufs + (ndims > 0 ? 1 : 0) + (with_eps ? 1 : 0);
  size_t argc = 12;
  napi_value argv[12];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int64_t dims[16] = {0};
  double eps = 0;
  if (argc != expected || (ndims > 0 && !GetDims(env, argv[nbufs], dims, ndims)) ||
      (with_eps && napi_get_value_double(env, argv[expected - 1], &eps) != napi_ok)) {
    return Throw(env, std::string(name) + ": expected " + std::to_string(nbufs) + " Float32Arrays" +
                          (ndims > 0 ? ", dims[" + std::to_string(ndims) + "]" : "") + (with_eps ? ", epsilon" : ""));
  }
  float* ptr[10];
  size_t len[10];
  for (size_t i = 0; i < nbufs; i++) {
    if (!GetF32(env, argv[i], &ptr[i], &len[i])) return Throw(env, std::string(name) + ": argument " + std::to_string(i) + " must be a Float32Array");
  }
  if (ndims == 0) dims[0] = static_cast<int64_t>(len[0]);  // elementwise: the length is the shape
  const std::vector<int64_t> w = want(dims);
  for (size_t i = 0; i < nbufs; i++) {
    if (w[i] <= 0 || static_cast<int64_t>(len[i]) != w[i]) {
      return Throw(env, std::string(name) + ": buffer " + std::to_string(i) + " has " + std::to_string(len[i]) +
                            " elements, the shape needs " + std::to_string(w[i]));
    }
  }
  const float feps = static_cast<float>(eps);
  std::string key = Key(name, dims, ndims > 0 ? static_cast<int>(ndims) : 1);
  if (with_eps) key += ",e" + std::to_string(feps);
  int64_t largest = 0;
  for (size_t i = 0; i < nbufs; i++) largest = std::max(largest, w[i]);
  try {
    // Made and run under the same thread count, so the primitive never sees more threads than it planned for.
    const OneThread one(largest < kOneThreadBelow);
    auto& cache = DirectCache();
    auto it = cache.find(key);
    if (it == cache.end()) {
      if (cache.size() >= 512) cache.clear();
      it = cache.emplace(key, make(dims, feps)).first;
    }
    it->second->Run(ptr);
  } catch (const dnnl::error& e) {
    return Throw(env, std::string(name) + ": oneDNN: " + e.what());
  } catch (const std::exception& e) {
    return Throw(env, std::string(name) + ": " + e.what());
  }
  return nullptr;
}

// batchNormForward(x, scale, shift, y, mean, variance, [N, C, H, W], epsilon)
napi_value BatchNormForward(napi_env env, napi_callback_info info) {
  return RunDirect(
      env, info, "batchNormForward", 6, 4, true,
      [](const int64_t* p) {
        const int64_t x = p[0] * p[1] * p[2] * p[3];
        return std::vector<int64_t>{x, p[1], p[1], x, p[1], p[1]};
      },
      [](const int64_t* p, float eps) { return MakeBnForwardPlan(p, eps); });
}

// batchNormBackward(dy, x, mean, variance, scale, dx, dscale, dshift, [N, C, H, W], epsilon)
napi_value BatchNormBackward(napi_env env, napi_callback_info info) {
  return RunDirect(
      env, info, "batchNormBackward", 8, 4, true,
      [](const int64_t* p) {
        const int64_t x = p[0] * p[1] * p[2] * p[3];
        return std::vector<int64_t>{x, x, p[1], p[1], p[1], x, p[1], p[1]};
      },
      [](const int64_t* p, float eps) { return MakeBnBackwardPlan(p, eps); });
}

// maxPoolBackward(x, dy, dx, [N, IH, IW, C, OH, OW, KH, KW, SH, SW, PT, PL, PB, PR])
napi_value MaxPoolBackward(napi_env env, napi_callback_info info) {
  return RunDirect(
      env, info, "maxPoolBackward", 3, 14, false,
      [](const int64_t* p) {
        const int64_t x = p[0] * p[1] * p[2] * p[3], y = p[0] * p[4] * p[5] * p[3];
        return std::vector<int64_t>{x, y, x};
      },
      [](const int64_t* p, float) { return MakeMaxPoolBackwardPlan(p); });
}

// maxPool(x, y, dims as maxPoolBackward's)
napi_value MaxPool(napi_env env, napi_callback_info info) {
  return RunDirect(
      env, info, "maxPool", 2, 14, false,
      [](const int64_t* p) { return std::vector<int64_t>{p[0] * p[1] * p[2] * p[3], p[0] * p[4] * p[5] * p[3]}; },
      [](const int64_t* p, float) { return MakeMaxPoolForwardPlan(p); });
}

// sgdUpdate(p, g, old, buf, out, [lr, momentum, weightDecay]): one parameter's SGD step with PyTorch's
// semantics, rounded op by op to float32 as the composed tfjs ops round it (train/kernels/wasm/SgdStep.ts
// documents the cases; this build does not contract a*b+c into an FMA, see binding.gyp), so the result
// is bit for bit the composed step's. With momentum 0, old and buf are null; on the first step old is null.
// A plain loop: oneDNN has no optimiser primitives, and this is one pass over three arrays.
napi_value SgdUpdate(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  float* ptr[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  size_t len[5] = {0, 0, 0, 0, 0};
  double h[3];
  bool ok = argc == 6;
  for (int i = 0; ok && i < 5; i++) {
    napi_valuetype t;
    ok = napi_typeof(env, argv[i], &t) == napi_ok && ((t == napi_null && (i == 2 || i == 3)) || GetF32(env, argv[i], &ptr[i], &len[i]));
  }
  for (uint32_t i = 0; ok && i < 3; i++) {
    napi_value e;
    ok = napi_get_element(env, argv[5], i, &e) == napi_ok && napi_get_value_double(env, e, &h[i]) == napi_ok;
  }
  const size_t n = len[0];
  ok = ok && len[1] == n && len[4] == n && (ptr[2] == nullptr || len[2] == n) && (ptr[3] == nullptr || len[3] == n) &&
       (ptr[2] == nullptr || ptr[3] != nullptr) && ((h[1] == 0) == (ptr[3] == nullptr));
  if (!ok) {
    return Throw(env, "sgdUpdate: expected (p, g, old | null, buf | null, out: Float32Arrays of one length, [lr, momentum, weightDecay]); buf null exactly when momentum is 0");
  }
  const float lr = static_cast<float>(h[0]), mu = static_cast<float>(h[1]), wd = static_cast<float>(h[2]);
  const float *p = ptr[0], *g = ptr[1], *old = ptr[2];
  float *buf = ptr[3], *out = ptr[4];
  if (buf == nullptr) {
    for (size_t j = 0; j < n; j++) out[j] = p[j] - (g[j] + p[j] * wd) * lr;
  } else if (old == nullptr) {
    for (size_t j = 0; j < n; j++) {
      const float d = g[j] + p[j] * wd;
      buf[j] = d;
      out[j] = p[j] - d * lr;
    }
  } else {
    for (size_t j = 0; j < n; j++) {
      const float d = old[j] * mu + (g[j] + p[j] * wd);
      buf[j] = d;
      out[j] = p[j] - d * lr;
    }
  }
  return nullptr;
}

// gather(x, idx, out, [outer, dim, slice]): out[o][k][j] = x[o][idx[k]][j] (tfjs GatherV2 with batchDims 0,
// the indices already checked to lie in [0, dim) by the caller). A copy, so bit for bit the wasm kernel's;
// the memory bank's 131k picked scores (train/loss/memory_bank.ts) took ~3.5 ms in the JS loop.
napi_value Gather(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  float *x = nullptr, *out = nullptr;
  size_t xn = 0, on = 0, kn = 0;
  int32_t* idx = nullptr;
  int64_t d[3];
  bool ok = argc == 4 && GetF32(env, argv[0], &x, &xn) && GetF32(env, argv[2], &out, &on) && GetDims(env, argv[3], d, 3);
  if (ok) {
    bool is_ta = false;
    napi_typedarray_type type;
    void* ptr = nullptr;
    napi_value ab;
    size_t offset = 0;
    ok = napi_is_typedarray(env, argv[1], &is_ta) == napi_ok && is_ta &&
         napi_get_typedarray_info(env, argv[1], &type, &kn, &ptr, &ab, &offset) == napi_ok && type == napi_int32_array;
    idx = static_cast<int32_t*>(ptr);
  }
  const int64_t outer = ok ? d[0] : 0, dim = ok ? d[1] : 0, slice = ok ? d[2] : 0;
  ok = ok && outer >= 0 && dim >= 0 && slice >= 0 && static_cast<int64_t>(xn) == outer * dim * slice &&
       static_cast<int64_t>(on) == outer * static_cast<int64_t>(kn) * slice;
  for (size_t k = 0; ok && k < kn; k++) ok = idx[k] >= 0 && idx[k] < dim;
  if (!ok) return Throw(env, "gather: expected (x: Float32Array, idx: Int32Array in [0, dim), out: Float32Array, [outer, dim, slice])");
  float* dst = out;
  for (int64_t o = 0; o < outer; o++) {
    const float* base = x + o * dim * slice;
    if (slice == 1) {
      for (size_t k = 0; k < kn; k++) dst[k] = base[idx[k]];
      dst += kn;
    } else {
      for (size_t k = 0; k < kn; k++, dst += slice) std::memcpy(dst, base + idx[k] * slice, slice * sizeof(float));
    }
  }
  return nullptr;
}

// binary(op, a, b, out, dims): out = a op b elementwise with broadcasting, op 0 add, 1 sub, 2 mul, 3 div;
// dims: the output shape padded to rank 4, then a's and b's element strides per output axis (0 where that
// input is broadcast). One IEEE operation per value (no FMA, see binding.gyp), so bit for bit what the wasm
// kernels compute; a plain loop on the calling thread, since these maps are small (at most a few hundred
// thousand values) and the stock kernels' broadcasting paths took 0.5-1.3 ms for [32,128]/[32,1].
template <typename Op>
void BinaryLoop(const float* a, const float* b, float* out, const int64_t* d, Op op) {
  const int64_t *sa = d + 4, *sb = d + 8;
  for (int64_t i0 = 0; i0 < d[0]; i0++)
    for (int64_t i1 = 0; i1 < d[1]; i1++)
      for (int64_t i2 = 0; i2 < d[2]; i2++) {
        const float* pa = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
        const float* pb = b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
        const int64_t n = d[3];
        if (sa[3] == 1 && sb[3] == 1) {
          for (int64_t j = 0; j < n; j++) out[j] = op(pa[j], pb[j]);
        } else if (sb[3] == 0 && sa[3] == 1) {
          const float y = pb[0];
          for (int64_t j = 0; j < n; j++) out[j] = op(pa[j], y);
        } else if (sa[3] == 0 && sb[3] == 1) {
          const float x = pa[0];
          for (int64_t j = 0; j < n; j++) out[j] = op(x, pb[j]);
        } else {
          for (int64_t j = 0; j < n; j++) out[j] = op(pa[j * sa[3]], pb[j * sb[3]]);
        }
        out += n;
      }
}

napi_value Binary(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t op = -1;
  float *a = nullptr, *b = nullptr, *out = nullptr;
  size_t an = 0, bn = 0, on = 0;
  int64_t d[12];
  bool ok = argc == 5 && napi_get_value_int32(env, argv[0], &op) == napi_ok && op >= 0 && op <= 3 &&
            GetF32(env, argv[1], &a, &an) && GetF32(env, argv[2], &b, &bn) && GetF32(env, argv[3], &out, &on) &&
            GetDims(env, argv[4], d, 12);
  if (ok) {
    // Every index the loops form must stay inside its array.
    int64_t n = 1, amax = 0, bmax = 0;
    for (int k = 0; k < 4; k++) {
      ok = ok && d[k] >= 1 && d[4 + k] >= 0 && d[8 + k] >= 0;
      n *= d[k];
      amax += (d[k] - 1) * d[4 + k];
      bmax += (d[k] - 1) * d[8 + k];
    }
    ok = ok && static_cast<int64_t>(on) == n && amax < static_cast<int64_t>(an) && bmax < static_cast<int64_t>(bn);
  }
  if (!ok) return Throw(env, "binary: expected (op 0-3, a, b, out: Float32Arrays, [out shape (4), a strides (4), b strides (4)]) in bounds");
  switch (op) {
    case 0: BinaryLoop(a, b, out, d, [](float x, float y) { return x + y; }); break;
    case 1: BinaryLoop(a, b, out, d, [](float x, float y) { return x - y; }); break;
    case 2: BinaryLoop(a, b, out, d, [](float x, float y) { return x * y; }); break;
    default: BinaryLoop(a, b, out, d, [](float x, float y) { return x / y; }); break;
  }
  return nullptr;
}

// scatterNd(indices, updates, out, [numUpdates, sliceRank, sliceSize, stride 0 .. stride sliceRank-1]):
// out = 0, then out[(Σ indices[i][r]·stride r)·sliceSize + j] += updates[i][j] for i in order (tfjs ScatterNd; repeated
// indices accumulate), so the sums are added in the wasm kernel's order and the result is bit for bit its.
// The bank's B×N score gradient (131k updates, train/loss/memory_bank.ts) took ~1 ms in it within a step.
napi_value ScatterNd(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  float *upd = nullptr, *out = nullptr;
  size_t un = 0, on = 0, in = 0;
  int32_t* idx = nullptr;
  uint32_t dn = 0;
  int64_t d[3 + 8];
  bool ok = argc == 4 && GetF32(env, argv[1], &upd, &un) && GetF32(env, argv[2], &out, &on) &&
            napi_get_array_length(env, argv[3], &dn) == napi_ok && dn >= 4 && dn <= 11 && GetDims(env, argv[3], d, dn);
  if (ok) {
    bool is_ta = false;
    napi_typedarray_type type;
    void* ptr = nullptr;
    napi_value ab;
    size_t offset = 0;
    ok = napi_is_typedarray(env, argv[0], &is_ta) == napi_ok && is_ta &&
         napi_get_typedarray_info(env, argv[0], &type, &in, &ptr, &ab, &offset) == napi_ok && type == napi_int32_array;
    idx = static_cast<int32_t*>(ptr);
  }
  const int64_t m = ok ? d[0] : 0, rank = ok ? d[1] : 0, slice = ok ? d[2] : 0;
  ok = ok && m >= 0 && rank >= 1 && dn == 3 + rank && slice >= 1 && static_cast<int64_t>(in) == m * rank &&
       static_cast<int64_t>(un) == m * slice;
  if (!ok) return Throw(env, "scatterNd: expected (indices: Int32Array, updates, out: Float32Arrays, [numUpdates, sliceRank, sliceSize, strides])");
  std::memset(out, 0, on * sizeof(float));
  for (int64_t i = 0; i < m; i++) {
    int64_t flat = 0;
    for (int64_t r = 0; r < rank; r++) flat += static_cast<int64_t>(idx[i * rank + r]) * d[3 + r];
    if (flat < 0 || (flat + 1) * slice > static_cast<int64_t>(on)) return Throw(env, "scatterNd: an index is outside the output");
    const float* u = upd + i * slice;
    float* o = out + flat * slice;
    for (int64_t j = 0; j < slice; j++) o[j] += u[j];
  }
  return nullptr;
}

// slice(x, out, [x shape (6), begin (6), size (6)]): the block of x at begin of the given size, shapes padded
// to rank 6. A copy (bit for bit the wasm kernel's); one channel out of the [32,64,64,3] input batch
// (train/model/cmc.ts) is 131k runs of one value, ~1.7 ms a call in ../wasm/Slice.ts's JS loop in a step.
napi_value Slice(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  float *x = nullptr, *out = nullptr;
  size_t xn = 0, on = 0;
  int64_t d[18];
  bool ok = argc == 3 && GetF32(env, argv[0], &x, &xn) && GetF32(env, argv[1], &out, &on) && GetDims(env, argv[2], d, 18);
  const int64_t *shape = d, *begin = d + 6, *size = d + 12;
  int64_t xs = 1, os = 1;
  for (int k = 0; ok && k < 6; k++) {
    ok = shape[k] >= 1 && begin[k] >= 0 && size[k] >= 1 && begin[k] + size[k] <= shape[k];
    xs *= shape[k];
    os *= size[k];
  }
  ok = ok && static_cast<int64_t>(xn) == xs && static_cast<int64_t>(on) == os;
  if (!ok) return Throw(env, "slice: expected (x, out: Float32Arrays, [x shape, begin, size] at rank 6) with the block inside x");
  int64_t st[6];
  st[5] = 1;
  for (int k = 4; k >= 0; k--) st[k] = st[k + 1] * shape[k + 1];
  const int64_t run = size[5];
  float* o = out;
  for (int64_t a = 0; a < size[0]; a++)
    for (int64_t b = 0; b < size[1]; b++)
      for (int64_t c = 0; c < size[2]; c++)
        for (int64_t e = 0; e < size[3]; e++)
          for (int64_t f = 0; f < size[4]; f++, o += run) {
            const float* src = x + (begin[0] + a) * st[0] + (begin[1] + b) * st[1] + (begin[2] + c) * st[2] +
                               (begin[3] + e) * st[3] + (begin[4] + f) * st[4] + begin[5];
            if (run == 1) *o = *src;
            else std::memcpy(o, src, run * sizeof(float));
          }
  return nullptr;
}

// relu(x, y)
napi_value Relu(napi_env env, napi_callback_info info) {
  return RunDirect(
      env, info, "relu", 2, 0, false, [](const int64_t* p) { return std::vector<int64_t>{p[0], p[0]}; },
      [](const int64_t* p, float) { return MakeReluPlan(false, p[0]); });
}

// reluBackward(dy, x, dx)
napi_value ReluBackward(napi_env env, napi_callback_info info) {
  return RunDirect(
      env, info, "reluBackward", 3, 0, false, [](const int64_t* p) { return std::vector<int64_t>{p[0], p[0], p[0]}; },
      [](const int64_t* p, float) { return MakeReluPlan(true, p[0]); });
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t n = 0;
  if (argc != 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) return Throw(env, "setThreads: expected a positive integer");
  omp_set_num_threads(n);
  return nullptr;
}

const char* IsaName(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "generic";
  }
}

// info(): the oneDNN this addon was built against and the one it runs with, and its instruction set.
napi_value Info(napi_env env, napi_callback_info) {
  const dnnl_version_t* v = dnnl_version();
  napi_value obj, val;
  napi_create_object(env, &obj);
  const std::string runtime = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  const std::string built = std::to_string(DNNL_VERSION_MAJOR) + "." + std::to_string(DNNL_VERSION_MINOR) + "." +
                            std::to_string(DNNL_VERSION_PATCH);
  napi_create_string_utf8(env, runtime.c_str(), NAPI_AUTO_LENGTH, &val);
  napi_set_named_property(env, obj, "version", val);
  napi_create_string_utf8(env, built.c_str(), NAPI_AUTO_LENGTH, &val);
  napi_set_named_property(env, obj, "builtWith", val);
  napi_create_string_utf8(env, IsaName(dnnl_get_effective_cpu_isa()), NAPI_AUTO_LENGTH, &val);
  napi_set_named_property(env, obj, "isa", val);
  napi_create_int32(env, omp_get_max_threads(), &val);
  napi_set_named_property(env, obj, "threads", val);
  napi_create_uint32(env, static_cast<uint32_t>(Cache().size() + DirectCache().size()), &val);
  napi_set_named_property(env, obj, "cachedPrimitives", val);
  return obj;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"conv2d", nullptr, Conv2d, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matMul", nullptr, MatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormForward", nullptr, BatchNormForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormBackward", nullptr, BatchNormBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPoolBackward", nullptr, MaxPoolBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPool", nullptr, MaxPool, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgdUpdate", nullptr, SgdUpdate, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gather", nullptr, Gather, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"binary", nullptr, Binary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"scatterNd", nullptr, ScatterNd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"slice", nullptr, Slice, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"relu", nullptr, Relu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reluBackward", nullptr, ReluBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
