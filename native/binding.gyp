{
  "targets": [
    {
      "target_name": "cmc_native",
      "sources": ["src/cmc_native.cc"],
      # -ffp-contract=off: sgdUpdate must round every product and sum to float32 as tfjs does (no FMA).
      # -O3 vectorises the elementwise loops (binary, sgdUpdate); without -ffast-math each value is still one
      # correctly rounded operation, so the results do not change.
      "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=off", "-fopenmp", "-fexceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "libraries": ["-ldnnl", "-fopenmp"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
