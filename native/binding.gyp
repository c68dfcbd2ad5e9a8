{
  "targets": [
    {
      "target_name": "cmc_native",
      "sources": ["src/cmc_native.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-fopenmp", "-fexceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "libraries": ["-ldnnl", "-fopenmp"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
