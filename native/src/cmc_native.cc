// cmc_native: oneDNN convolutions and matrix products for the tfjs `native` backend (train/kernels/native/).
//
// The JS side hands us Float32Array views on the wasm backend's heap, so the kernels read and write tfjs
// tensors in place. Tensors are NHWC with HWIO filters (tfjs's layouts); oneDNN takes those as user
// memory formats and we let it pick its own (blocked) layouts, reordering to and from them around each
// call. Creating a oneDNN primitive costs far more than running a small one, so primitives, reorders and
// their scratch buffers are cached per shape.
#include <node_api.h>
#include <omp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
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
  napi_create_uint32(env, static_cast<uint32_t>(Cache().size()), &val);
  napi_set_named_property(env, obj, "cachedPrimitives", val);
  return obj;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"conv2d", nullptr, Conv2d, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matMul", nullptr, MatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
