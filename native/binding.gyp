{
  # One addon for Node and Electron (Node-API is ABI-stable). Kernels are C11 and compiled with -O3 so the
  # portable loops auto-vectorize; ISA-specific files (SSE/AVX/NEON) will get their own flags per file.
  "targets": [
    {
      "target_name": "whittle_native",
      "sources": ["src/binding.cc", "src/qs8_fc.c"],
      # node-addon-api's headers with C++ exceptions on (a bad argument throws a JS error). Included
      # directly rather than as a gyp dependency, which would write Makefiles into native/node_modules/.
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++14", "-std=gnu++1y"],
      "cflags": ["-O3", "-Wall", "-Wextra"],
      "cflags_c": ["-std=c11"],
      "cflags_cc": ["-std=c++17"],
      "cflags!": ["-O2", "-O0"],
      "xcode_settings": {
        "GCC_OPTIMIZATION_LEVEL": "3",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "GCC_C_LANGUAGE_STANDARD": "c11"
      },
      "msvs_settings": {"VCCLCompilerTool": {"Optimization": 2, "ExceptionHandling": 1}}
    }
  ]
}
