{
  # One addon for Node and Electron (Node-API is ABI-stable). Kernels are C11 and compiled with -O3 so the
  # portable loops auto-vectorize; ISA-specific files (SSE/AVX/NEON) will get their own flags per file.
  "targets": [
    {
      "target_name": "whittle_native",
      "sources": [
        "src/binding.cc",
        # The kernel library: infrastructure, references, operators, lists and the scalar kernels
        # (ISA kernels: the whittle_isa_* libraries below).
        "src/binding_kernels.cc",
        "src/binding_plan.cc",
        "src/cpu/cpu-features.c",
        "src/threadpool.c",
        "src/frame_source.c",
        "src/f32_conv2d.c",
        "src/f32_reference.c",
        "src/f32_ukernels.c",
        "src/f32_dwconv_minmax_ukernel_c4__scalar.c",
        "src/f32_dwconv3x3_minmax_ukernel_c4__scalar.c",
        "src/f32_gemm_minmax_ukernel_4x4__scalar.c",
        "src/f32_igemm_minmax_ukernel_4x4__scalar.c",
        "src/f32_simple_ukernels__scalar.c",
        "src/qs8_conv2d.c",
        "src/qs8_reference.c",
        "src/qs8_requantize_gemmlowp.c",
        "src/qs8_ukernels.c",
        "src/qs8_dwconv_minmax_gemmlowp_ukernel_c4__scalar.c",
        "src/qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__scalar.c",
          "src/qs8_dwconv3x3_minmax_gemmlowp_ukernel_c4__scalar.c",
        "src/qs8_gemm_minmax_gemmlowp_ukernel_2x4__scalar.c",
        "src/qs8_igemm_minmax_gemmlowp_ukernel_2x4__scalar.c",
        "src/qs8_simple_ukernels__scalar.c",
        "src/qs8_vadd_tables_minmax_gemmlowp_ukernel_1__scalar.c",
        # Compressed formats (binding_formats.cc): base and scalar kernels of every format.
        "src/binding_formats.cc",
        "src/qf_conv2d.c",
        "src/bin_conv2d.c",
        "src/xnor_conv2d.c",
        "src/tern_conv2d.c",
        "src/tern_conv2d_qs8.c",
        "src/sparse_conv2d.c",
        "src/cb_conv2d.c",
        "src/hashed_fc.c",
        # fp32 training kernels (binding_train.cc): forward passes and gradients, the SGEMM driver and its
        # scalar microkernel.
        "src/binding_train.cc",
        "src/f32_sgemm.c",
        "src/f32_train_scratch.c",
        "src/f32_train_conv2d.c",
        "src/f32_train_dwconv2d.c",
        "src/f32_train_pool.c",
        "src/f32_train_batchnorm.c",
        "src/f32_train_elementwise.c",
        "src/f32_ppmm_ukernel_4x8__scalar.c",
      ],
      "conditions": [
        ["target_arch=='x64'", {"dependencies": ["whittle_isa_avx2", "whittle_isa_avx512", "whittle_isa_avx512vnni", "whittle_isa_avx512vpopcnt"]}],
        ["target_arch=='arm64'", {"dependencies": ["whittle_isa_neon", "whittle_isa_neondot"]}],
        ["target_arch=='arm'", {"dependencies": ["whittle_isa_neon"]}]
      ],
      "libraries": ["-lpthread", "-lm"],
      # node-addon-api's headers with C++ exceptions on (a bad argument throws a JS error). Included
      # directly rather than as a gyp dependency, which would write Makefiles into native/node_modules/.
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++14", "-std=gnu++1y"],
      "cflags": ["-O3", "-Wall", "-Wextra"],
      "cflags_c": ["-std=c11", "-ffp-contract=off"],
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

  ],
  # ISA flags only for that ISA's sources (files named *__<isa>.c): one static library per ISA, built and
  # linked only on the architecture that has it, so the base build runs on any CPU of its family and
  # native/src/cpu/ picks a path at run time. Kernels of other number formats join the same libraries.
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
      {
        "target_name": "whittle_isa_avx2",
        "type": "static_library",
        "sources": [
          "src/f32_dwconv_minmax_ukernel_c16__avx2.c",
          "src/f32_dwconv3x3_minmax_ukernel_c16__avx2.c",
          "src/f32_gemm_minmax_ukernel_1x16__avx2.c",
          "src/f32_gemm_minmax_ukernel_4x16__avx2.c",
          "src/f32_gemm_minmax_ukernel_6x16__avx2.c",
          "src/f32_igemm_minmax_ukernel_1x16__avx2.c",
          "src/f32_igemm_minmax_ukernel_6x16__avx2.c",
          "src/f32_ppmm_ukernel_6x16__avx2.c",
          "src/f32_simple_ukernels__avx2.c",
          "src/qs8_dwconv_minmax_gemmlowp_ukernel_c16__avx2.c",
          "src/qs8_dwconv3x3_minmax_gemmlowp_ukernel_c16__avx2.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_1x16c2__avx2.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_4x16c2__avx2.c",
          "src/qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx2.c",
          "src/qs8_igemm_minmax_gemmlowp_ukernel_4x16c2__avx2.c",
          "src/qs8_simple_ukernels__avx2.c",
          "src/qf_conv2d__avx2.c",
          "src/bin_conv2d__avx2.c",
          "src/xnor_conv2d__avx2.c",
          "src/tern_conv2d__avx2.c",
          "src/sparse_conv2d__avx2.c",
          "src/cb_conv2d__avx2.c",
          "src/hashed_fc__avx2.c"
        ],
        "cflags": ["-O3", "-Wall", "-Wextra", "-fPIC", "-mavx2", "-mfma", "-mpopcnt"],
        "cflags_c": ["-std=c11", "-ffp-contract=off"],
        "cflags!": ["-O2", "-O0"]
      },
      {
        "target_name": "whittle_isa_avx512",
        "type": "static_library",
        "sources": [
          "src/f32_dwconv_minmax_ukernel_c32__avx512.c",
          "src/f32_dwconv3x3_minmax_ukernel_c32__avx512.c",
          "src/f32_gemm_minmax_ukernel_1x32__avx512.c",
          "src/f32_gemm_minmax_ukernel_4x32__avx512.c",
          "src/f32_gemm_minmax_ukernel_6x32__avx512.c",
          "src/f32_igemm_minmax_ukernel_1x32__avx512.c",
          "src/f32_igemm_minmax_ukernel_8x32__avx512.c",
          "src/f32_igemm_narrow_minmax_ukernel_8x16c2__avx512.c",
          "src/f32_igemm_narrow_minmax_ukernel_12x16c2__avx512.c",
          "src/f32_ppmm_ukernel_6x32__avx512.c",
          "src/f32_simple_ukernels__avx512.c",
          "src/qs8_dwconv_minmax_gemmlowp_ukernel_c32__avx512.c",
          "src/qs8_dwconv3x3_minmax_gemmlowp_ukernel_c32__avx512.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_1x32c2__avx512.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_4x32c2__avx512.c",
          "src/qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512.c",
          "src/qs8_igemm_minmax_gemmlowp_ukernel_4x32c2__avx512.c",
          "src/qs8_simple_ukernels__avx512.c",
          "src/bin_conv2d__avx512.c",
          "src/qf_conv2d__avx512.c",
          "src/xnor_conv2d__avx512.c",
          "src/tern_conv2d__avx512.c",
          "src/hashed_fc__avx512.c"
        ],
        "cflags": ["-O3", "-Wall", "-Wextra", "-fPIC", "-mavx2", "-mfma", "-mpopcnt", "-mavx512f", "-mavx512bw", "-mavx512vl"],
        "cflags_c": ["-std=c11", "-ffp-contract=off"],
        "cflags!": ["-O2", "-O0"]
      },
      {
        "target_name": "whittle_isa_avx512vnni",
        "type": "static_library",
        "sources": [
          "src/qs8_gemm_minmax_gemmlowp_ukernel_1x32c4__avx512vnni.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_4x32c4__avx512vnni.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_8x32c4__avx512vnni.c",
          "src/qs8_igemm_minmax_gemmlowp_ukernel_4x32c4__avx512vnni.c",
          "src/qs8_igemm_minmax_gemmlowp_ukernel_8x32c4__avx512vnni.c",
          "src/qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512vnni.c",
          "src/qs8_dwconv3x3_minmax_gemmlowp_ukernel_c32__avx512vnni.c"
        ],
        "cflags": ["-O3", "-Wall", "-Wextra", "-fPIC", "-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"],
        "cflags_c": ["-std=c11"],
        "cflags!": ["-O2", "-O0"]
      },
      {
        "target_name": "whittle_isa_avx512vpopcnt",
        "type": "static_library",
        "sources": ["src/xnor_conv2d__avx512vpopcnt.c", "src/qs8_vadd_tables_minmax_gemmlowp_ukernel_64__avx512vpopcnt.c"],
        "cflags": ["-O3", "-Wall", "-Wextra", "-fPIC", "-mavx2", "-mfma", "-mpopcnt", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vpopcntdq", "-mavx512vbmi"],
        "cflags_c": ["-std=c11", "-ffp-contract=off"],
        "cflags!": ["-O2", "-O0"]
      }
      ]
    }],
    ["target_arch=='arm64'", {
      "targets": [
      {
        "target_name": "whittle_isa_neon",
        "type": "static_library",
        "sources": [
          "src/f32_dwconv_minmax_ukernel_c8__neon.c",
          "src/f32_dwconv3x3_minmax_ukernel_c8__neon.c",
          "src/f32_gemm_minmax_ukernel_1x8__neon.c",
          "src/f32_gemm_minmax_ukernel_4x8__neon.c",
          "src/f32_igemm_minmax_ukernel_1x8__neon.c",
          "src/f32_igemm_minmax_ukernel_4x8__neon.c",
          "src/f32_ppmm_ukernel_4x8__neon.c",
          "src/f32_simple_ukernels__neon.c",
          "src/qs8_dwconv_minmax_gemmlowp_ukernel_c8__neon.c",
          "src/qs8_dwconv3x3_minmax_gemmlowp_ukernel_c8__neon.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_1x8__neon.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_4x8__neon.c",
          "src/qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__neon.c",
          "src/qs8_igemm_minmax_gemmlowp_ukernel_4x8__neon.c",
          "src/qs8_simple_ukernels__neon.c",
          "src/qf_conv2d__neon.c",
          "src/bin_conv2d__neon.c",
          "src/xnor_conv2d__neon.c",
          "src/tern_conv2d__neon.c",
          "src/cb_conv2d__neon.c",
          "src/hashed_fc__neon.c"
        ],
        "cflags": ["-O3", "-Wall", "-Wextra", "-fPIC"],
        "cflags_c": ["-std=c11", "-ffp-contract=off"],
        "cflags!": ["-O2", "-O0"],
        "conditions": [["target_arch=='arm'", {"cflags": ["-mfpu=neon"]}]]
      },
      {
        "target_name": "whittle_isa_neondot",
        "type": "static_library",
        "sources": [
          "src/qs8_gemm_minmax_gemmlowp_ukernel_1x8c4__neondot.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_4x8c4__neondot.c",
          "src/qs8_igemm_minmax_gemmlowp_ukernel_4x8c4__neondot.c",
          "src/qf_conv2d__neondot.c"
        ],
        "cflags": ["-O3", "-Wall", "-Wextra", "-fPIC", "-march=armv8.2-a+dotprod"],
        "cflags_c": ["-std=c11"],
        "cflags!": ["-O2", "-O0"]
      }
      ]
    }],
    ["target_arch=='arm'", {
      "targets": [
      {
        "target_name": "whittle_isa_neon",
        "type": "static_library",
        "sources": [
          "src/f32_dwconv_minmax_ukernel_c8__neon.c",
          "src/f32_dwconv3x3_minmax_ukernel_c8__neon.c",
          "src/f32_gemm_minmax_ukernel_1x8__neon.c",
          "src/f32_gemm_minmax_ukernel_4x8__neon.c",
          "src/f32_igemm_minmax_ukernel_1x8__neon.c",
          "src/f32_igemm_minmax_ukernel_4x8__neon.c",
          "src/f32_ppmm_ukernel_4x8__neon.c",
          "src/f32_simple_ukernels__neon.c",
          "src/qs8_dwconv_minmax_gemmlowp_ukernel_c8__neon.c",
          "src/qs8_dwconv3x3_minmax_gemmlowp_ukernel_c8__neon.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_1x8__neon.c",
          "src/qs8_gemm_minmax_gemmlowp_ukernel_4x8__neon.c",
          "src/qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__neon.c",
          "src/qs8_igemm_minmax_gemmlowp_ukernel_4x8__neon.c",
          "src/qs8_simple_ukernels__neon.c",
          "src/qf_conv2d__neon.c",
          "src/bin_conv2d__neon.c",
          "src/xnor_conv2d__neon.c",
          "src/tern_conv2d__neon.c",
          "src/cb_conv2d__neon.c"
        ],
        "cflags": ["-O3", "-Wall", "-Wextra", "-fPIC"],
        "cflags_c": ["-std=c11", "-ffp-contract=off"],
        "cflags!": ["-O2", "-O0"],
        "conditions": [["target_arch=='arm'", {"cflags": ["-mfpu=neon"]}]]
      }
      ]
    }]
  ]

}
