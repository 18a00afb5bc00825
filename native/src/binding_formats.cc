// The Node-API surface of the compressed-format kernels: one class, FormatLayer, whose constructor checks and
// copies a layer's weights in their storage layout (native/formats.md) and whose run() splits the
// output channels [oc_begin, oc_end) over the thread pool. As in binding_kernels.cc, every bad argument
// throws a TypeError (wrong type) or RangeError (wrong value, length, shape, index or aliasing) naming it:
//   Expected <what> for <name> but received <value>
// Array contents (CSR structure, codebook indices, unused high bits, weight ranges) are checked on the
// copies the layer keeps, so nothing the caller does afterwards (even on a SharedArrayBuffer) reaches C.
#include "binding_formats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "binding_args.h"
#include "binding_kernels.h"
#include "binding_plan.h"

extern "C" {
#include "bin_conv2d.h"
#include "cb_conv2d.h"
#include "cpu/cpu-features.h"
#include "f32_ops.h"
#include "hashed_fc.h"
#include "qf_conv2d.h"
#include "qs8_ops.h"
#include "sparse_conv2d.h"
#include "tern_conv2d.h"
#include "xnor_conv2d.h"
}

namespace whittle {
namespace {

// Argument decoding shared with the other bindings (binding_args.h).
using namespace whittle::args;  // NOLINT(build/namespaces)

// Every length check here accepts an empty (even detached) array where 0 elements are expected: an empty
// CSR, an empty quantizer input.
constexpr bool kEmptyAllowed = true;

template <typename T>
std::vector<T> Copy(const View& view) {
  const T* data = static_cast<const T*>(view.data);
  return data == nullptr ? std::vector<T>() : std::vector<T>(data, data + view.length);
}

enum class Format { kFixed16, kFixed8, kBinary, kXnor, kTernary, kSparse, kCodebook, kHashed };

const struct {
  const char* name;
  Format format;
} kFormats[] = {{"fixed16", Format::kFixed16},       {"fixed8", Format::kFixed8},
                {"binary-weights", Format::kBinary}, {"xnor", Format::kXnor},
                {"ternary", Format::kTernary},       {"sparse", Format::kSparse},
                {"codebook", Format::kCodebook},     {"hashed", Format::kHashed}};
const char* kFormatList =
    "'fixed16', 'fixed8', 'binary-weights', 'xnor', 'ternary', 'sparse', 'codebook' or 'hashed'";

std::string Hex(uint64_t value) {
  static const char digits[] = "0123456789abcdef";
  std::string text;
  do {
    text.insert(text.begin(), digits[value & 15]);
    value >>= 4;
  } while (value != 0);
  return "0x" + text;
}

class FormatLayer : public Napi::ObjectWrap<FormatLayer>, public PlanStep {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefinePackedLayer<FormatLayer>(env, "FormatLayer",
                                          {InstanceAccessor<&FormatLayer::ExpandedBytes>("expandedBytes")});
  }

  ~FormatLayer() override {
    qs8_conv2d_destroy(qs8_dense_);
    f32_conv2d_destroy(f32_dense_);
  }

  // new FormatLayer(format, layer: 'conv2d' | 'fullyConnected', args)
  explicit FormatLayer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FormatLayer>(info) {
    Napi::Env env = info.Env();
    const std::string format =
        info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    bool known = false;
    for (const auto& f : kFormats) {
      if (format == f.name) {
        format_ = f.format;
        known = true;
      }
    }
    if (!known) ThrowType(env, kFormatList, "format", info.Length() > 0 ? info[0] : env.Undefined());
    const std::string layer =
        info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    if (layer != "conv2d" && layer != "fullyConnected")
      ThrowType(env, "'conv2d' or 'fullyConnected'", "layer", info.Length() > 1 ? info[1] : env.Undefined());
    fc_ = layer == "fullyConnected";
    const Napi::Object args = ArgsObject(info, 2, "args");
    const whittle_conv2d_shape s = ReadConvShape(args, fc_, /*dilation=*/false);
    g_ = whittle_conv2d_shape_geometry(&s);
    oc_ = s.output_channels;
    in_channels_ = s.input_channels;
    reduction_ = s.kernel_height * s.kernel_width * g_.group_input_channels;
    input_length_ = s.batch * s.input_height * s.input_width * s.input_channels;
    output_length_ = s.batch * g_.output_height * g_.output_width * oc_;
    const std::string k_name = fc_ ? "inChannels" : "kernelHeight x kernelWidth x inputChannels / groups";
    const std::string oc_name = fc_ ? "outChannels" : "outputChannels";
    const std::string rows = fc_ ? "outChannels x " : "outputChannels x ";
    const whittle_isa isa = whittle_isa_selected();
    if (format_ == Format::kTernary || format_ == Format::kSparse || format_ == Format::kCodebook) {
      const Napi::Value activations = args.Get("activations");
      const std::string kind = activations.IsString() ? activations.As<Napi::String>().Utf8Value() : "";
      if (!activations.IsUndefined() && kind != "float32" && kind != "int8")
        ThrowType(env, "'float32', 'int8' or undefined", "activations", activations);
      int8_ = kind == "int8";
    }

    switch (format_) {
      case Format::kFixed16:
      case Format::kFixed8: {
        const bool wide = format_ == Format::kFixed16;
        const size_t max_k = wide ? QF16_MAX_REDUCTION : QF8_MAX_REDUCTION;
        ExpectReductionAtMost(env, max_k, k_name);
        input_fl_ = static_cast<int32_t>(Integer(args, "inputFl", -64, 64));
        weight_fl_ = static_cast<int32_t>(Integer(args, "weightFl", -64, 64));
        output_fl_ = static_cast<int32_t>(Integer(args, "outputFl", -64, 64));
        const int32_t shift = input_fl_ + weight_fl_ - output_fl_;
        const int32_t min_shift = wide ? QF16_MIN_SHIFT : QF8_MIN_SHIFT;
        const int32_t max_shift = wide ? QF16_MAX_SHIFT : QF8_MAX_SHIFT;
        if (shift < min_shift || shift > max_shift) {
          ThrowRange(env,
                     "inputFl + weightFl - outputFl in [" + std::to_string(min_shift) + ", " +
                         std::to_string(max_shift) + "]",
                     "outputFl", std::to_string(output_fl_) + " (shift " + std::to_string(shift) + ")");
        }
        const int64_t lo = wide ? INT16_MIN : INT8_MIN, hi = wide ? INT16_MAX : INT8_MAX;
        q_min_ = static_cast<int32_t>(Integer(args, "outputMin", lo, hi, true, lo));
        q_max_ = static_cast<int32_t>(Integer(args, "outputMax", lo, hi, true, hi));
        if (q_min_ > q_max_) {
          ThrowRange(env, "outputMax >= outputMin (" + std::to_string(q_min_) + ")", "outputMax",
                     std::to_string(q_max_));
        }
        const View weights = Field(args, "weights", wide ? napi_int16_array : napi_int8_array);
        ExpectLength(env, weights, oc_ * reduction_, rows + k_name, kEmptyAllowed);
        const View bias = ReadBias(args, wide ? napi_bigint64_array : napi_int32_array, oc_name);
        ExpectUnchanged(env, {&weights, &bias});
        if (wide) {
          w16_ = Copy<int16_t>(weights);
          for (size_t i = 0; i < w16_.size(); i++) {
            if (w16_[i] < -QF16_WEIGHT_MAX) {
              ThrowRange(env, "a weight in [-32767, 32767]", "weights[" + std::to_string(i) + "]",
                         std::to_string(w16_[i]));
            }
          }
          bias64_ = Copy<int64_t>(bias);
          for (size_t o = 0; o < bias64_.size(); o++) {
            if (bias64_[o] > QF16_MAX_ABS_BIAS || bias64_[o] < -QF16_MAX_ABS_BIAS) {
              ThrowRange(env, "a bias in [-2^56, 2^56]", "bias[" + std::to_string(o) + "]",
                         std::to_string(bias64_[o]));
            }
          }
          qf16_ = qf16_conv2d_select(isa);
          kernel_ = qf16_->name;
        } else {
          w8_ = Copy<int8_t>(weights);
          bias32_ = Copy<int32_t>(bias);
          qf8_ = qf8_conv2d_select(isa);
          kernel_ = qf8_->name;
          // The int8 GEMM kernels compute the same function bit-exactly where the layer's accumulators
          // allow it (qs8_conv2d_create_fixed_point); the qf8 kernels run the other layers.
          bool unsupported = false;
          qs8_dense_ = qs8_conv2d_create_fixed_point(&s, w8_.data(), has_bias_ ? bias32_.data() : nullptr,
                                                     input_fl_ + weight_fl_ - output_fl_, q_min_, q_max_, isa,
                                                     &unsupported);
          if (qs8_dense_ == nullptr && !unsupported)
            throw Napi::Error::New(env, "Out of memory packing the fixed-point weights");
          if (qs8_dense_ != nullptr) kernel_ = qs8_conv2d_kernel_name(qs8_dense_);
        }
        break;
      }
      case Format::kBinary:
      case Format::kTernary: {
        if (int8_) ExpectReductionAtMost(env, TERN_QS8_MAX_REDUCTION, k_name);
        ReadActivationScalars(args);
        const size_t words = bin_row_words(reduction_);
        const bool binary = format_ == Format::kBinary;
        const View plane_a = Field(args, binary ? "weightBits" : "weightNonzero", napi_uint32_array);
        ExpectLength(env, plane_a, oc_ * words, rows + "ceil(" + k_name + " / 32)", kEmptyAllowed);
        const View plane_b = binary ? View{nullptr, 0, 0, napi_uint32_array, "", Napi::Value()}
                                    : Field(args, "weightSign", napi_uint32_array);
        if (!binary)
          ExpectLength(env, plane_b, oc_ * words, rows + "ceil(" + k_name + " / 32)", kEmptyAllowed);
        const View none{nullptr, 0, 0, napi_float32_array, "", Napi::Value()};
        const View alpha = int8_ ? none : Field(args, "alpha", napi_float32_array);
        if (!int8_) ExpectLength(env, alpha, oc_, oc_name, kEmptyAllowed);
        const RequantizationViews requantization = ReadRequantization(args, oc_name);
        const View bias = ReadBias(args, int8_ ? napi_int32_array : napi_float32_array, oc_name);
        ExpectUnchanged(
            env, {&plane_a, &plane_b, &alpha, &requantization.multipliers, &requantization.shifts, &bias});
        bits_a_ = Copy<uint32_t>(plane_a);
        bits_b_ = Copy<uint32_t>(plane_b);
        alpha_ = Copy<float>(alpha);
        if (int8_) {
          bias32_ = Copy<int32_t>(bias);
          CopyRequantization(env, requantization);
        } else {
          fbias_ = Copy<float>(bias);
        }
        const uint32_t tail = static_cast<uint32_t>(reduction_ % 32);
        const uint32_t unused = tail == 0 ? 0 : ~((UINT32_C(1) << tail) - 1);
        for (size_t o = 0; o < oc_; o++) {
          const size_t last = o * words + words - 1;
          if ((bits_a_[last] & unused) != 0) {
            ThrowRange(env, "the bits past " + std::to_string(reduction_) + " of each row to be 0",
                       plane_a.name + "[" + std::to_string(last) + "]", Hex(bits_a_[last]));
          }
        }
        for (size_t i = 0; i < bits_b_.size(); i++) {
          if ((bits_b_[i] & ~bits_a_[i]) != 0) {
            ThrowRange(env, "sign bits only where weightNonzero is 1 (and 0 past the row)",
                       "weightSign[" + std::to_string(i) + "]", Hex(bits_b_[i]));
          }
        }
        if (binary) {
          bin_ = bin_conv2d_select(isa);
          kernel_ = bin_->name;
          // Load-time expansion (issue 15 item 9): the weights alpha[o] * (bit ? -1 : +1) in fp32, on the
          // fp32 operator (its igemm, Winograd and depthwise kernels), which is faster than the sign kernels
          // on every shape (CreateDenseF32). The bits stay for the reference and for expandWeights: false.
          if (ExpandWeights(args)) {
            std::vector<float> expanded(oc_ * reduction_);
            for (size_t o = 0; o < oc_; o++) {
              for (size_t k = 0; k < reduction_; k++) {
                const bool negative = ((bits_a_[o * words + k / 32] >> (k % 32)) & 1) != 0;
                expanded[o * reduction_ + k] = negative ? -alpha_[o] : alpha_[o];
              }
            }
            CreateDenseF32(env, s, expanded, isa);
          }
        } else {
          tern_ = tern_conv2d_select(isa);
          kernel_ = int8_ ? "scalar" : tern_->name;
          if (ExpandWeights(args)) ExpandTernary(env, s, isa);
        }
        break;
      }
      case Format::kXnor: {
        ExpectReductionAtMost(env, XNOR_MAX_REDUCTION, k_name);
        ReadFloatBounds(args);
        input_scaling_ = Boolean(args, "inputScaling");
        // int8 activations (the int8 producer read without its dequantize): the sign of scale * (q - z) with
        // scale > 0 is the sign of q - z, so only the zero point is needed.
        xnor_qs8_input_ = !args.Get("inputZeroPoint").IsUndefined();
        if (xnor_qs8_input_) {
          input_zero_point_ = static_cast<int32_t>(Integer(args, "inputZeroPoint", INT8_MIN, INT8_MAX));
          if (input_scaling_) {
            ThrowRange(env, "false with int8 activations (the K map needs their fp32 values)", "inputScaling",
                       "true");
          }
        }
        const size_t words = xnor_group_words(g_.group_input_channels);
        const size_t taps = g_.kernel_height * g_.kernel_width;
        const View bits = Field(args, "weightBits", napi_biguint64_array);
        const std::string channels = fc_ ? "inChannels" : "inputChannels / groups";
        ExpectLength(env, bits, oc_ * taps * words,
                     fc_ ? "outChannels x ceil(inChannels / 64)"
                         : "outputChannels x kernelHeight x kernelWidth x ceil(inputChannels / groups / 64)",
                     kEmptyAllowed);
        const View alpha = Field(args, "alpha", napi_float32_array);
        ExpectLength(env, alpha, oc_, oc_name, kEmptyAllowed);
        const View bias = ReadBias(args, napi_float32_array, oc_name);
        ExpectUnchanged(env, {&bits, &alpha, &bias});
        bits64_ = Copy<uint64_t>(bits);
        alpha_ = Copy<float>(alpha);
        fbias_ = Copy<float>(bias);
        const uint32_t tail = static_cast<uint32_t>(g_.group_input_channels % 64);
        const uint64_t unused = tail == 0 ? 0 : ~((UINT64_C(1) << tail) - 1);
        for (size_t i = words - 1; i < bits64_.size(); i += words) {
          if ((bits64_[i] & unused) != 0) {
            ThrowRange(env, "the bits past " + channels + " of each tap to be 0",
                       "weightBits[" + std::to_string(i) + "]", Hex(bits64_[i]));
          }
        }
        xnor_ = xnor_conv2d_select(isa);
        xnor_pack_ = xnor_pack_select(isa)->pack;
        xnor_pack_qs8_ = xnor_pack_select(isa)->pack_qs8;
        kernel_ = xnor_->name;
        break;
      }
      case Format::kSparse: {
        ReadActivationScalars(args);
        const View offsets = Field(args, "rowOffsets", napi_uint32_array);
        ExpectLength(env, offsets, oc_ + 1, oc_name + " + 1", kEmptyAllowed);
        const View columns = Field(args, "columnIndices", napi_uint32_array);
        const View values = Field(args, "values", int8_ ? napi_int8_array : napi_float32_array);
        ExpectLength(env, values, columns.length, "columnIndices.length", kEmptyAllowed);
        if (columns.length != 0 && columns.data == nullptr)
          ThrowRange(env, "an array with an attached buffer", "columnIndices", "a detached buffer");
        const RequantizationViews requantization = ReadRequantization(args, oc_name);
        const View bias = ReadBias(args, int8_ ? napi_int32_array : napi_float32_array, oc_name);
        ExpectUnchanged(
            env, {&offsets, &columns, &values, &requantization.multipliers, &requantization.shifts, &bias});
        bits_a_ = Copy<uint32_t>(offsets);
        bits_b_ = Copy<uint32_t>(columns);
        if (int8_) {
          w8_ = Copy<int8_t>(values);
          bias32_ = Copy<int32_t>(bias);
          CopyRequantization(env, requantization);
        } else {
          values_ = Copy<float>(values);
          fbias_ = Copy<float>(bias);
        }
        if (bits_a_[0] != 0) ThrowRange(env, "0", "rowOffsets[0]", std::to_string(bits_a_[0]));
        if (bits_a_[oc_] != bits_b_.size()) {
          ThrowRange(env, "columnIndices.length (" + std::to_string(bits_b_.size()) + ")",
                     "rowOffsets[" + std::to_string(oc_) + "]", std::to_string(bits_a_[oc_]));
        }
        for (size_t o = 0; o < oc_; o++) {
          if (bits_a_[o + 1] < bits_a_[o]) {
            ThrowRange(env, "non-decreasing offsets (>= " + std::to_string(bits_a_[o]) + ")",
                       "rowOffsets[" + std::to_string(o + 1) + "]", std::to_string(bits_a_[o + 1]));
          }
          if (int8_ && bits_a_[o + 1] - bits_a_[o] > QS8_FC_MAX_INPUT_CHANNELS) {
            ThrowRange(env,
                       "at most " + std::to_string(QS8_FC_MAX_INPUT_CHANNELS) + " nonzeros per row (int8)",
                       "rowOffsets[" + std::to_string(o + 1) + "]", std::to_string(bits_a_[o + 1]));
          }
          for (size_t j = bits_a_[o]; j < bits_a_[o + 1]; j++) {
            const uint32_t column = bits_b_[j];
            if (column >= reduction_ || (j > bits_a_[o] && column <= bits_b_[j - 1])) {
              ThrowRange(env,
                         "a column < " + std::to_string(reduction_) + " (" + k_name +
                             "), strictly increasing within row " + std::to_string(o),
                         "columnIndices[" + std::to_string(j) + "]", std::to_string(column));
            }
          }
        }
        sparse_ = sparse_f32_select(isa);
        kernel_ = int8_ ? "scalar" : sparse_->name;
        if (!int8_ && !fc_ && sparse_f32_conv2d_planes_supported(&g_)) {
          plane_offsets_.resize(bits_b_.size());
          sparse_f32_conv2d_plane_offsets(&g_, bits_b_.size(), bits_b_.data(), plane_offsets_.data());
          planes_ = true;
        }
        break;
      }
      case Format::kCodebook: {
        if (int8_) ExpectReductionAtMost(env, CB_QS8_MAX_REDUCTION, k_name);
        ReadActivationScalars(args);
        index_bits_ = static_cast<uint32_t>(Integer(args, "indexBits", CB_MIN_INDEX_BITS, CB_MAX_INDEX_BITS));
        // fp32: one codebook for the layer; int8: one int8 codebook per output channel, [rows][size].
        const View codebook = Field(args, "codebook", int8_ ? napi_int8_array : napi_float32_array);
        const size_t max_size = size_t{1} << index_bits_;
        const size_t tables = int8_ ? oc_ : 1;
        const size_t size = tables == 0 ? 0 : codebook.length / tables;
        if (size < 1 || size > max_size || size * tables != codebook.length) {
          ThrowRange(env,
                     (int8_ ? rows : std::string()) + "a size in [1, " + std::to_string(max_size) +
                         "] (2^indexBits)",
                     "codebook", "length " + std::to_string(codebook.length));
        }
        ExpectLength(env, codebook, codebook.length, "2^indexBits at most", kEmptyAllowed);
        const size_t row_bytes = cb_row_bytes(reduction_, index_bits_);
        const View indices = Field(args, "indices", napi_uint8_array);
        ExpectLength(env, indices, oc_ * row_bytes, rows + "ceil(" + k_name + " x indexBits / 8)",
                     kEmptyAllowed);
        const RequantizationViews requantization = ReadRequantization(args, oc_name);
        const View bias = ReadBias(args, int8_ ? napi_int32_array : napi_float32_array, oc_name);
        ExpectUnchanged(env,
                        {&codebook, &indices, &requantization.multipliers, &requantization.shifts, &bias});
        u8_ = Copy<uint8_t>(indices);
        if (int8_) {
          w8_ = Copy<int8_t>(codebook);
          bias32_ = Copy<int32_t>(bias);
          CopyRequantization(env, requantization);
        } else {
          alpha_ = Copy<float>(codebook);
          fbias_ = Copy<float>(bias);
        }
        codebook_size_ = size;
        for (size_t o = 0; o < oc_; o++) {
          const uint8_t* row = u8_.data() + o * row_bytes;
          for (size_t k = 0; k < reduction_; k++) {
            uint32_t index = 0;
            for (uint32_t b = 0; b < index_bits_; b++) {
              const size_t bit = k * index_bits_ + b;
              index |= static_cast<uint32_t>((row[bit / 8] >> (bit % 8)) & 1) << b;
            }
            if (index >= size) {
              ThrowRange(env, "indices < codebook.length (" + std::to_string(size) + ")",
                         "indices (row " + std::to_string(o) + ", index " + std::to_string(k) + ")",
                         std::to_string(index));
            }
          }
          for (size_t bit = reduction_ * index_bits_; bit < row_bytes * 8; bit++) {
            if (((row[bit / 8] >> (bit % 8)) & 1) != 0) {
              ThrowRange(env, "the bits past " + k_name + " x indexBits of each row to be 0",
                         "indices[" + std::to_string(o * row_bytes + bit / 8) + "]", Hex(row[bit / 8]));
            }
          }
        }
        cb_ = cb_conv2d_select(isa);
        kernel_ = int8_ ? "reference" : cb_->name;
        if (int8_ && ExpandWeights(args)) {
          std::vector<int8_t> dense(oc_ * reduction_);
          cb_expand_weights_s8(oc_, reduction_, u8_.data(), index_bits_, w8_.data(), size, dense.data());
          CreateDenseS8(s, dense, isa);
        } else if (ExpandWeights(args)) {
          std::vector<float> dense(oc_ * reduction_);
          cb_expand_weights_f32(oc_, reduction_, u8_.data(), index_bits_, alpha_.data(), dense.data());
          CreateDenseF32(env, s, dense, isa);
        }
        break;
      }
      case Format::kHashed: {
        if (!fc_) ThrowType(env, "'fullyConnected' (hashed layers are fully connected)", "layer", info[1]);
        ReadFloatBounds(args);
        const View buckets = Field(args, "buckets", napi_float32_array);
        if (buckets.length < 1 || buckets.length > HASHED_MAX_BUCKETS) {
          ThrowRange(env, "a length in [1, " + std::to_string(HASHED_MAX_BUCKETS) + "]", "buckets",
                     "length " + std::to_string(buckets.length));
        }
        if (oc_ * reduction_ > HASHED_MAX_ELEMENTS) {
          ThrowRange(env, "outChannels x inChannels <= " + std::to_string(HASHED_MAX_ELEMENTS), "outChannels",
                     std::to_string(oc_) + " (x " + std::to_string(reduction_) + ")");
        }
        ExpectLength(env, buckets, buckets.length, "1 or more", kEmptyAllowed);
        seed_ = static_cast<uint32_t>(Integer(args, "seed", 0, UINT32_MAX));
        const View bias = ReadBias(args, napi_float32_array, oc_name);
        ExpectUnchanged(env, {&buckets, &bias});
        alpha_ = Copy<float>(buckets);
        fbias_ = Copy<float>(bias);
        hashed_ = hashed_f32_select(isa);
        kernel_ = hashed_->name;
        // Expanded once onto the fp32 operator where the dense weights fit HASHED_EXPAND_MAX_BYTES, as the
        // other formats are; else (or expandWeights: false) the hashed kernel expands a row at a time.
        if (ExpandWeights(args) && oc_ * reduction_ <= HASHED_EXPAND_MAX_BYTES / sizeof(float)) {
          std::vector<float> dense(oc_ * reduction_);
          hashed_f32_expand(reduction_, 0, oc_, alpha_.data(), static_cast<uint32_t>(alpha_.size()), seed_,
                            dense.data());
          CreateDenseF32(env, s, dense, isa);
        }
        break;
      }
    }
    live_ = true;
    TagPlanStep<FormatLayer>(env, info.This().As<Napi::Object>());
  }

  // The plan step (binding_plan.h): one input and one output of the layer's tensor type.
  std::vector<StepOperand> StepInputs() const override {
    const size_t element = ElementBytes(InputType());
    return {{input_length_ * element, element}};
  }
  std::vector<StepOperand> StepOutputs() const override {
    const size_t element = ElementBytes(TensorType());
    return {{output_length_ * element, element}};
  }
  const char* RunStep(const void* const* inputs, void* const* outputs, whittle_threadpool* pool) override {
    if (!live_) return "this FormatLayer was disposed";
    try {
      return RunLayer(inputs[0], outputs[0], false, pool);
    } catch (const std::bad_alloc&) {
      return "out of memory allocating the layer's scratch";
    }
  }

 private:
  friend Napi::Function DefinePackedLayer<FormatLayer>(Napi::Env env, const char* name,
                                                       std::initializer_list<PropertyDescriptor> extra);

  // Binary-weight, ternary, codebook and hashed layers run on the dense fp32 / int8 operators (f32_ops.h,
  // qs8_ops.h: GEMM, IGEMM, depthwise, with their weight packing) on weights expanded once here
  // (tern_expand_weights_*, cb_expand_weights_f32, hashed_f32_expand: the one load-time expansion path, and
  // expandedBytes its one size rule); the format's own kernels stay the reference, and run the layer when the
  // dense operator refuses its shape or quantization. The packed dense weights are the layer's memory cost
  // (expandedBytes: 4 bytes a weight in fp32, 1 in int8, plus the packing's padding), which the runtime adds
  // to its memory report; the package keeps the compressed planes or indices. expandWeights: false (default
  // true) keeps the format's kernels, for a device that cannot spare the memory.
  static bool ExpandWeights(const Napi::Object& args) {
    return args.Get("expandWeights").IsUndefined() || Boolean(args, "expandWeights");
  }

  void CreateDenseF32(Napi::Env env, const whittle_conv2d_shape& s, const std::vector<float>& dense,
                      whittle_isa isa) {
    // A fully-connected layer with fewer outputs than kRowsMaxOutputs reads each expanded row in one dot
    // product per image (the dense-row kernel of hashed_fc_impl.h, over these weights): the GEMM's register
    // tile (16 or 32 outputs wide) would be mostly padding, and the layer is bound by reading its weights
    // (2048 x 10 ternary, AVX-512: 1.13 us against 1.90 us on the GEMM; 400 x 120: the GEMM is faster). At
    // every batch, so that an image's scores do not depend on the batch it runs in (the same sums in the same
    // order as at batch 1).
    if (fc_ && oc_ < kRowsMaxOutputs) {
      values_ = dense;
      hashed_ = hashed_f32_select(isa);
      rows_ = true;
      kernel_ = "f32_fc_rows";
      expanded_bytes_ = dense.size() * sizeof(float);
      return;
    }
    const float* bias = has_bias_ ? fbias_.data() : nullptr;
    f32_dense_ =
        fc_ ? f32_fully_connected_create(s.batch, in_channels_, oc_, dense.data(), bias, fmin_, fmax_, isa)
            : f32_conv2d_create(&s, dense.data(), bias, fmin_, fmax_, isa);
    if (f32_dense_ == nullptr && whittle_conv2d_shape_problem(&s) == nullptr)
      throw Napi::Error::New(env, "Out of memory packing the expanded weights");
    if (f32_dense_ != nullptr) {
      kernel_ = f32_conv2d_kernel_name(f32_dense_);
      expanded_bytes_ = dense.size() * sizeof(float);
    }
  }

  void ExpandTernary(Napi::Env env, const whittle_conv2d_shape& s, whittle_isa isa) {
    if (!int8_) {
      std::vector<float> dense(oc_ * reduction_);
      tern_expand_weights_f32(oc_, reduction_, bits_a_.data(), bits_b_.data(), alpha_.data(), dense.data());
      CreateDenseF32(env, s, dense, isa);
      return;
    }
    std::vector<int8_t> dense(oc_ * reduction_);
    tern_expand_weights_s8(oc_, reduction_, bits_a_.data(), bits_b_.data(), dense.data());
    CreateDenseS8(s, dense, isa);
  }

  // int8 ternary and codebook layers: their expanded int8 weights on the int8 operators (qs8_ops.h) with the
  // layer's requantization. The checks above leave out-of-range shapes and quantizations to the operators'
  // own limits; those layers keep the format's kernel (kernel_ as set before).
  void CreateDenseS8(const whittle_conv2d_shape& s, const std::vector<int8_t>& dense, whittle_isa isa) {
    const qs8_activation_quantization q = {false, input_zero_point_, output_zero_point_, q_min_, q_max_};
    const int32_t* bias = has_bias_ ? bias32_.data() : nullptr;
    qs8_dense_ =
        fc_ ? qs8_fully_connected_create(s.batch, in_channels_, oc_, dense.data(), bias, multipliers_.data(),
                                         shifts_.data(), &q, isa)
            : qs8_conv2d_create(&s, dense.data(), bias, multipliers_.data(), shifts_.data(), &q, isa);
    if (qs8_dense_ != nullptr) {
      kernel_ = qs8_conv2d_kernel_name(qs8_dense_);
      expanded_bytes_ = dense.size();
    }
  }

  // The kernels' accumulators bound the reduction length (k_name: how the layer's shape spells it).
  void ExpectReductionAtMost(Napi::Env env, size_t max, const std::string& k_name) const {
    if (reduction_ > max) {
      ThrowRange(env, "a reduction " + k_name + " <= " + std::to_string(max),
                 fc_ ? "inChannels" : "inputChannels", std::to_string(reduction_));
    }
  }

  // int8 activations (ternary and sparse): the quantization of qs8_requantize_gemmlowp.h.
  void ReadInt8Scalars(const Napi::Object& args) {
    input_zero_point_ = static_cast<int32_t>(Integer(args, "inputZeroPoint", INT8_MIN, INT8_MAX));
    output_zero_point_ = static_cast<int32_t>(Integer(args, "outputZeroPoint", INT8_MIN, INT8_MAX));
    q_min_ = static_cast<int32_t>(Integer(args, "outputMin", INT8_MIN, INT8_MAX, true, INT8_MIN));
    q_max_ = static_cast<int32_t>(Integer(args, "outputMax", INT8_MIN, INT8_MAX, true, INT8_MAX));
    if (q_min_ > q_max_) {
      ThrowRange(args.Env(), "outputMax >= outputMin (" + std::to_string(q_min_) + ")", "outputMax",
                 std::to_string(q_max_));
    }
  }

  // The optional per-output-channel bias (sets has_bias_): `type` is the accumulator's element type.
  View ReadBias(const Napi::Object& args, napi_typedarray_type type, const std::string& oc_name) {
    const View bias = OptionalField(args, "bias", type, &has_bias_);
    if (has_bias_) ExpectLength(args.Env(), bias, oc_, oc_name, kEmptyAllowed);
    return bias;
  }

  // int8 activations (ternary and sparse): the per-output-channel requantization of
  // qs8_requantize_gemmlowp.h, one Q31 multiplier and one shift a channel. Empty views for fp32 activations.
  struct RequantizationViews {
    View multipliers, shifts;
  };
  RequantizationViews ReadRequantization(const Napi::Object& args, const std::string& oc_name) const {
    const View none{nullptr, 0, 0, napi_int32_array, "", Napi::Value()};
    if (!int8_) return {none, none};
    // Braced initialisation reads the fields in order: multipliers first, as the messages have always said.
    RequantizationViews views{Field(args, "multipliers", napi_int32_array),
                              Field(args, "shifts", napi_int32_array)};
    ExpectLength(args.Env(), views.multipliers, oc_, oc_name, kEmptyAllowed);
    ExpectLength(args.Env(), views.shifts, oc_, oc_name, kEmptyAllowed);
    return views;
  }

  // Copies and checks the values the views were read for (ExpectUnchanged has re-read them).
  void CopyRequantization(Napi::Env env, const RequantizationViews& views) {
    multipliers_ = Copy<int32_t>(views.multipliers);
    shifts_ = Copy<int32_t>(views.shifts);
    for (size_t o = 0; o < oc_; o++) {
      if (multipliers_[o] < 0) {
        ThrowRange(env, "a Q31 multiplier in [0, 2147483647]", "multipliers[" + std::to_string(o) + "]",
                   std::to_string(multipliers_[o]));
      }
      if (shifts_[o] < QS8_REQUANT_MIN_SHIFT || shifts_[o] > QS8_REQUANT_MAX_SHIFT) {
        ThrowRange(env,
                   "an integer in [" + std::to_string(QS8_REQUANT_MIN_SHIFT) + ", " +
                       std::to_string(QS8_REQUANT_MAX_SHIFT) + "]",
                   "shifts[" + std::to_string(o) + "]", std::to_string(shifts_[o]));
      }
    }
  }

  // fp32 activations: the output clamp [outputMin, outputMax], unbounded by default.
  void ReadFloatBounds(const Napi::Object& args) {
    fmin_ = Float(args, "outputMin", -INFINITY);
    fmax_ = Float(args, "outputMax", INFINITY);
    if (!(fmin_ <= fmax_))
      ThrowRange(args.Env(), "outputMax >= outputMin (" + std::to_string(fmin_) + ")", "outputMax",
                 std::to_string(fmax_));
  }

  // Ternary and sparse layers take either activation type (the constructor has set int8_).
  void ReadActivationScalars(const Napi::Object& args) {
    if (int8_) {
      ReadInt8Scalars(args);
    } else {
      ReadFloatBounds(args);
    }
  }

  // The output's element type, and the input's except for xnor on int8 activations (InputType).
  napi_typedarray_type TensorType() const {
    if (format_ == Format::kFixed16) return napi_int16_array;
    return format_ == Format::kFixed8 || int8_ ? napi_int8_array : napi_float32_array;
  }
  napi_typedarray_type InputType() const { return xnor_qs8_input_ ? napi_int8_array : TensorType(); }

  // One run: the operands and the per-run scratch shared by the threads.
  struct Task {
    FormatLayer* self;
    const void* input;
    void* output;
    bool reference;
    const uint64_t* input_bits;
    const float* input_scale;
    float* workspace;      // sparse fp32 conv2d: reduction_ floats per thread; codebook conv2d: CbWorkspace()
    int16_t* workspace16;  // sparse int8 conv2d: reduction_ int16 per thread
  };

  static void RunRange(void* context, size_t thread, size_t begin, size_t end) {
    const Task* task = static_cast<const Task*>(context);
    task->self->Compute(*task, thread, begin, end);
  }

  // Sparse fp32 conv2d on the planes kernel (sparse_conv2d.h): output rows [begin, end) of batch x
  // output_height, all channels, so that each thread writes whole pixels. The task packs the plane rows those
  // output rows read (with the kernel_height - 1 rows below them) into its own thread's planes: a thread
  // reads only what it wrote itself, and the usual owner of a block of rows packs and computes the same rows
  // on every call (a shared packing by one thread made the other core fetch it: 2 threads were slower).
  static void PlanesOutputRows(void* context, size_t thread, size_t begin, size_t end) {
    const Task* task = static_cast<const Task*>(context);
    const FormatLayer* self = task->self;
    const whittle_conv2d_geometry* g = &self->g_;
    const size_t oh = g->output_height, ph = oh + g->kernel_height - 1;
    float* planes = task->workspace + thread * sparse_f32_conv2d_planes_floats(g);
    for (size_t row = begin; row < end;) {
      const size_t n = row / oh, stop = std::min(end, (n + 1) * oh);
      sparse_f32_conv2d_planes_pack(g, n * ph + row % oh, n * ph + (stop - n * oh) + g->kernel_height - 1,
                                    static_cast<const float*>(task->input), planes);
      self->sparse_->conv2d_planes(g, row, stop, 0, self->oc_, planes, self->bits_a_.data(),
                                   self->plane_offsets_.data(), self->values_.data(),
                                   self->has_bias_ ? self->fbias_.data() : nullptr, self->fmin_, self->fmax_,
                                   static_cast<float*>(task->output));
      row = stop;
    }
  }

  // A run's input, output and bias (null without one) as the kernels' element types.
  template <typename Value, typename Bias>
  struct Operands {
    const Value* in;
    Value* out;
    const Bias* bias;
  };
  template <typename Value, typename Bias>
  Operands<Value, Bias> OperandsOf(const Task& t, const std::vector<Bias>& biases) const {
    return {static_cast<const Value*>(t.input), static_cast<Value*>(t.output),
            has_bias_ ? biases.data() : nullptr};
  }

  // A fixed-point layer of either word size (qf_conv2d.h: the same kernel signatures over Word and Bias).
  template <typename Variant, typename Word, typename Bias>
  void ComputeFixedPoint(const Task& t, size_t begin, size_t end, const Variant* variant,
                         decltype(Variant::conv2d) conv2d_reference, decltype(Variant::fc) fc_reference,
                         const std::vector<Word>& weights, const std::vector<Bias>& biases) const {
    const auto [in, out, bias] = OperandsOf<Word>(t, biases);
    if (fc_) {
      (t.reference ? fc_reference : variant->fc)(g_.batch, in_channels_, oc_, begin, end, in, weights.data(),
                                                 bias, input_fl_, weight_fl_, output_fl_, q_min_, q_max_,
                                                 out);
    } else {
      (t.reference ? conv2d_reference : variant->conv2d)(&g_, begin, end, in, weights.data(), bias, input_fl_,
                                                         weight_fl_, output_fl_, q_min_, q_max_, out);
    }
  }

  void Compute(const Task& t, size_t thread, size_t begin, size_t end) const {
    const whittle_conv2d_geometry* g = &g_;
    const size_t n = g_.batch, ic = in_channels_, oc = oc_;
    if (rows_ && !t.reference) {
      // Expanded rows (CreateDenseF32), one dot product each; the weights pointer makes the kernel read them.
      const auto [in, out, bias] = OperandsOf<float>(t, fbias_);
      hashed_->fc(n, ic, oc, begin, end, in, values_.data(), nullptr, 0, 0, bias, fmin_, fmax_, nullptr, out);
      return;
    }
    switch (format_) {
      case Format::kFixed16:
        ComputeFixedPoint(t, begin, end, qf16_, qf16_conv2d_minmax_rndnu_ukernel__reference,
                          qf16_fc_minmax_rndnu_ukernel__reference, w16_, bias64_);
        break;
      case Format::kFixed8:
        ComputeFixedPoint(t, begin, end, qf8_, qf8_conv2d_minmax_rndnu_ukernel__reference,
                          qf8_fc_minmax_rndnu_ukernel__reference, w8_, bias32_);
        break;
      case Format::kBinary: {
        const auto [in, out, bias] = OperandsOf<float>(t, fbias_);
        if (fc_) {
          (t.reference ? bin_fc_minmax_ukernel__reference : bin_->fc)(
              n, ic, oc, begin, end, in, bits_a_.data(), alpha_.data(), bias, fmin_, fmax_, out);
        } else {
          (t.reference ? bin_conv2d_minmax_ukernel__reference : bin_->conv2d)(
              g, begin, end, in, bits_a_.data(), alpha_.data(), bias, fmin_, fmax_, out);
        }
        break;
      }
      case Format::kTernary: {
        if (int8_) {
          const auto [in, out, bias] = OperandsOf<int8_t>(t, bias32_);
          if (fc_) {
            (t.reference ? tern_fc_qs8_minmax_gemmlowp_ukernel__reference
                         : tern_fc_qs8_minmax_gemmlowp_ukernel__scalar)(
                n, ic, oc, begin, end, in, input_zero_point_, bits_a_.data(), bits_b_.data(), bias,
                multipliers_.data(), shifts_.data(), output_zero_point_, q_min_, q_max_, out);
          } else {
            (t.reference ? tern_conv2d_qs8_minmax_gemmlowp_ukernel__reference
                         : tern_conv2d_qs8_minmax_gemmlowp_ukernel__scalar)(
                g, begin, end, in, input_zero_point_, bits_a_.data(), bits_b_.data(), bias,
                multipliers_.data(), shifts_.data(), output_zero_point_, q_min_, q_max_, out);
          }
          break;
        }
        const auto [in, out, bias] = OperandsOf<float>(t, fbias_);
        if (fc_) {
          (t.reference ? tern_fc_minmax_ukernel__reference : tern_->fc)(
              n, ic, oc, begin, end, in, bits_a_.data(), bits_b_.data(), alpha_.data(), bias, fmin_, fmax_,
              out);
        } else {
          (t.reference ? tern_conv2d_minmax_ukernel__reference : tern_->conv2d)(
              g, begin, end, in, bits_a_.data(), bits_b_.data(), alpha_.data(), bias, fmin_, fmax_, out);
        }
        break;
      }
      case Format::kXnor: {
        float* out = static_cast<float*>(t.output);
        const float* bias = has_bias_ ? fbias_.data() : nullptr;
        if (fc_) {
          (t.reference ? xnor_fc_minmax_ukernel__reference : xnor_->fc)(
              n, ic, oc, begin, end, t.input_bits, bits64_.data(), alpha_.data(), t.input_scale, bias, fmin_,
              fmax_, out);
        } else {
          (t.reference ? xnor_conv2d_minmax_ukernel__reference : xnor_->conv2d)(
              g, begin, end, t.input_bits, bits64_.data(), alpha_.data(), t.input_scale, bias, fmin_, fmax_,
              out);
        }
        break;
      }
      case Format::kSparse: {
        if (int8_) {
          const auto [in, out, bias] = OperandsOf<int8_t>(t, bias32_);
          if (fc_) {
            (t.reference ? sparse_qs8_fc_minmax_gemmlowp_ukernel__reference
                         : sparse_qs8_fc_minmax_gemmlowp_ukernel__scalar)(
                n, ic, oc, begin, end, in, input_zero_point_, bits_a_.data(), bits_b_.data(), w8_.data(),
                bias, multipliers_.data(), shifts_.data(), output_zero_point_, q_min_, q_max_, out);
          } else {
            (t.reference ? sparse_qs8_conv2d_minmax_gemmlowp_ukernel__reference
                         : sparse_qs8_conv2d_minmax_gemmlowp_ukernel__scalar)(
                g, begin, end, in, input_zero_point_, bits_a_.data(), bits_b_.data(), w8_.data(), bias,
                multipliers_.data(), shifts_.data(), output_zero_point_, q_min_, q_max_,
                t.workspace16 + thread * reduction_, out);
          }
          break;
        }
        const auto [in, out, bias] = OperandsOf<float>(t, fbias_);
        if (fc_) {
          (t.reference ? sparse_f32_fc_minmax_ukernel__reference : sparse_->fc)(
              n, ic, oc, begin, end, in, bits_a_.data(), bits_b_.data(), values_.data(), bias, fmin_, fmax_,
              out);
        } else {
          (t.reference ? sparse_f32_conv2d_minmax_ukernel__reference : sparse_->conv2d)(
              g, begin, end, in, bits_a_.data(), bits_b_.data(), values_.data(), bias, fmin_, fmax_,
              t.workspace + thread * reduction_, out);
        }
        break;
      }
      case Format::kCodebook: {
        if (int8_) {
          // Not expanded (expandWeights: false, or a shape the int8 operators refuse), or the reference run.
          const auto [in, out, bias] = OperandsOf<int8_t>(t, bias32_);
          const whittle_conv2d_geometry fc = whittle_fc_geometry(n, ic, oc);
          cb_conv2d_qs8_minmax_gemmlowp_ukernel__reference(
              fc_ ? &fc : g, begin, end, in, input_zero_point_, u8_.data(), index_bits_, w8_.data(),
              codebook_size_, bias, multipliers_.data(), shifts_.data(), output_zero_point_, q_min_, q_max_,
              out);
          break;
        }
        const auto [in, out, bias] = OperandsOf<float>(t, fbias_);
        if (fc_) {
          (t.reference ? cb_fc_minmax_ukernel__reference : cb_->fc)(n, ic, oc, begin, end, in, u8_.data(),
                                                                    index_bits_, alpha_.data(),
                                                                    codebook_size_, bias, fmin_, fmax_, out);
        } else {
          (t.reference ? cb_conv2d_minmax_ukernel__reference : cb_->conv2d)(
              g, begin, end, in, u8_.data(), index_bits_, alpha_.data(), codebook_size_, bias, fmin_, fmax_,
              t.workspace + thread * CbWorkspace(), out);
        }
        break;
      }
      case Format::kHashed: {
        const auto [in, out, bias] = OperandsOf<float>(t, fbias_);
        // Each row expanded on the fly into the thread's workspace (expanded at load: the fp32 operator).
        (t.reference ? hashed_f32_fc_minmax_ukernel__reference : hashed_->fc)(
            n, ic, oc, begin, end, in, nullptr, alpha_.data(), static_cast<uint32_t>(alpha_.size()), seed_,
            bias, fmin_, fmax_, t.workspace == nullptr ? nullptr : t.workspace + thread * reduction_, out);
        break;
      }
    }
  }

  Napi::Value Execute(const Napi::CallbackInfo& info, bool reference) {
    Napi::Env env = info.Env();
    if (!live_) throw Napi::Error::New(env, "This FormatLayer was disposed");
    const napi_typedarray_type type = TensorType();
    const napi_typedarray_type input_type = InputType();
    const void* in = nullptr;
    void* out = nullptr;
    if (!QuickRunOperands(info, input_type, input_length_, output_length_, &in, &out, type)) {
      const View input = Array(env, info.Length() > 0 ? info[0] : env.Undefined(), "input", {input_type},
                               Article(input_type));
      const View output =
          Array(env, info.Length() > 1 ? info[1] : env.Undefined(), "output", {type}, Article(type));
      ExpectLength(env, input, input_length_,
                   fc_ ? "batch x inChannels" : "batch x inputHeight x inputWidth x inputChannels",
                   kEmptyAllowed);
      ExpectLength(env, output, output_length_,
                   fc_ ? "batch x outChannels" : "batch x outputHeight x outputWidth x outputChannels",
                   kEmptyAllowed);
      ExpectNoOverlap(env, output, {&input});
      in = input.data;
      out = output.data;
    }
    ThreadPoolLease lease;
    const char* error = RunLayer(in, out, reference, lease.pool());
    if (error != nullptr) throw Napi::Error::New(env, error);
    return env.Undefined();
  }

  // Runs the layer (or its plain C reference) on checked operands; returns null or an error message. The
  // scratch a format needs is kept between calls (resized only when the thread count grows), so a model run
  // allocates nothing here.
  const char* RunLayer(const void* input, void* output, bool reference, whittle_threadpool* pool) {
    if (qs8_dense_ != nullptr && !reference) {
      if (!qs8_conv2d_run(qs8_dense_, input, output, pool))
        return "Out of memory allocating the convolution's per-thread scratch";
      return nullptr;
    }
    if (f32_dense_ != nullptr && !reference) {
      if (!f32_conv2d_run(f32_dense_, static_cast<const float*>(input), static_cast<float*>(output), pool))
        return "Out of memory allocating the convolution's per-thread scratch";
      return nullptr;
    }
    Task task{this, input, output, reference, nullptr, nullptr, nullptr, nullptr};
    const size_t threads = whittle_threadpool_threads(pool);
    if (format_ == Format::kXnor) {
      const float* in = static_cast<const float*>(input);
      const size_t pixels = g_.batch * g_.input_height * g_.input_width;
      input_bits_.resize(pixels * xnor_pixel_words(g_.groups, g_.group_input_channels));
      if (xnor_qs8_input_) {
        (reference ? xnor_pack_qs8_ukernel__scalar : xnor_pack_qs8_)(
            pixels, g_.groups, g_.group_input_channels, static_cast<const int8_t*>(input), input_zero_point_,
            input_bits_.data());
      } else {
        (reference ? xnor_pack_ukernel__scalar : xnor_pack_)(pixels, g_.groups, g_.group_input_channels, in,
                                                             input_bits_.data());
      }
      task.input_bits = input_bits_.data();
      if (input_scaling_) {
        scale_.resize(g_.batch * g_.output_height * g_.output_width);
        xnor_input_scale_map(&g_, in, scale_.data());
        task.input_scale = scale_.data();
      }
    } else if (format_ == Format::kSparse && !fc_ && int8_) {
      workspace16_.resize(std::max(workspace16_.size(), reduction_ * (reference ? 1 : threads)));
      task.workspace16 = workspace16_.data();
    } else if (format_ == Format::kSparse && !fc_ && planes_ && !reference) {
      // Zero-padded channel planes (sparse_conv2d.h), one set per thread (PlanesOutputRows).
      planes_buffer_.resize(std::max(planes_buffer_.size(), sparse_f32_conv2d_planes_floats(&g_) * threads));
      task.workspace = planes_buffer_.data();
    } else if (format_ == Format::kSparse && !fc_) {
      workspace_.resize(std::max(workspace_.size(), reduction_ * (reference ? 1 : threads)));
      task.workspace = workspace_.data();
    } else if (format_ == Format::kHashed && !reference) {
      workspace_.resize(std::max(workspace_.size(), reduction_ * threads));
      task.workspace = workspace_.data();
    } else if (format_ == Format::kCodebook && !int8_ && !fc_ && !reference) {
      workspace_.resize(std::max(workspace_.size(), CbWorkspace() * threads));
      task.workspace = workspace_.data();
    }
    if (reference) {
      Compute(task, 0, 0, oc_);
    } else if (format_ == Format::kSparse && planes_) {
      // Work per output row as ChannelsPerTask counts it; tasks of whole 4-row tiles.
      const size_t rows = g_.batch * g_.output_height;
      const double row_work =
          4.0 * static_cast<double>(g_.output_width) * static_cast<double>(bits_b_.size());
      whittle_threadpool_parallelize(pool, PlanesOutputRows, &task, rows,
                                     whittle_threadpool_granularity(nullptr, 4, row_work, rows));
    } else {
      whittle_threadpool_parallelize(pool, RunRange, &task, oc_, ChannelsPerTask());
    }
    return nullptr;
  }

  // Floats of codebook workspace per thread (tap tile and bins of the SIMD kernels, cb_conv2d.h).
  size_t CbWorkspace() const { return cb_conv2d_workspace_floats(reduction_, codebook_size_); }

  // Output channels per unit of the thread pool's chunks (whittle_threadpool_granularity, in
  // multiply-accumulates; XNOR's count at 1/16, as one 64-bit XOR + popcount covers 64 of them). Layers of
  // less than twice the minimum task work run on the calling thread: the issue-3 XNOR layers (3-9 us), the
  // LeNet and depthwise layers of every format. The compressed formats are slower per MAC than fp32 / int8,
  // so they could split earlier, but a split costs most on exactly these small layers when the machine is
  // busy (a worker preempted mid-task makes the caller wait for its next time slice). Tasks are also whole
  // channel blocks of the SIMD kernels (32 for XNOR, 16 for binary weights and ternary, 8 for fixed8) when
  // there are at least two, so that no split sends a block's channels to the slower leftover path. The full
  // minimum holds inside a held plan run too (no pool is passed): the lower held minimum was measured on the
  // fp32 / int8 kernels only.
  size_t ChannelsPerTask() const {
    const double pixels = static_cast<double>(g_.batch * g_.output_height * g_.output_width);
    const bool xnor = format_ == Format::kXnor;
    double macs = pixels * static_cast<double>(reduction_);
    if (format_ == Format::kSparse && !bits_a_.empty()) {
      // Nonzeros only, each weighted as 4 dense fp32 MACs: that is its cost on the planes kernel (VGG layer
      // at 90 %: 42 us for 0.93 M nonzero MACs against 101 us for 9.4 M dense MACs), and the gather
      // kernels (fc, int8, strided convolutions) pay more per nonzero.
      macs = 4.0 * pixels * static_cast<double>(bits_a_.back()) / static_cast<double>(oc_);
    }
    size_t channels = whittle_threadpool_granularity(nullptr, 1, xnor ? macs / 16 : macs, oc_);
    if (channels >= oc_) return oc_;
    const size_t block = xnor ? 32 : 16;
    if (g_.groups == 1 && oc_ >= 2 * block) channels = (channels + block - 1) / block * block;
    return channels;
  }

  Napi::Value Run(const Napi::CallbackInfo& info) { return Execute(info, false); }
  // The plain C reference kernels on the same arguments: for tests that compare the JS-visible results.
  Napi::Value RunReference(const Napi::CallbackInfo& info) { return Execute(info, true); }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    live_ = false;
    qs8_conv2d_destroy(qs8_dense_);
    qs8_dense_ = nullptr;
    f32_conv2d_destroy(f32_dense_);
    f32_dense_ = nullptr;
    expanded_bytes_ = 0;
    w16_ = {};
    w8_ = {};
    bias64_ = {};
    bias32_ = {};
    multipliers_ = {};
    shifts_ = {};
    bits_a_ = {};
    bits_b_ = {};
    plane_offsets_ = {};
    bits64_ = {};
    input_bits_ = {};
    planes_buffer_ = {};
    scale_ = {};
    workspace_ = {};
    workspace16_ = {};
    alpha_ = {};
    fbias_ = {};
    values_ = {};
    u8_ = {};
    return info.Env().Undefined();
  }

  Napi::Value Kernel(const Napi::CallbackInfo& info) {
    if (!live_) return info.Env().Null();
    return Napi::String::New(info.Env(), kernel_);
  }
  Napi::Value ExpandedBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(expanded_bytes_));
  }
  Napi::Value InputLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(input_length_));
  }
  Napi::Value OutputLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(output_length_));
  }
  Napi::Value OutputHeight(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(g_.output_height));
  }
  Napi::Value OutputWidth(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(g_.output_width));
  }

  Format format_ = Format::kFixed16;
  bool fc_ = false;
  bool live_ = false;
  bool has_bias_ = false;
  bool input_scaling_ = false;
  bool xnor_qs8_input_ = false;  // xnor on int8 activations (inputZeroPoint given)
  bool int8_ = false;            // ternary / sparse / codebook with int8 activations
  int32_t input_zero_point_ = 0, output_zero_point_ = 0;
  std::vector<int32_t> multipliers_, shifts_;
  whittle_conv2d_geometry g_{};
  size_t oc_ = 0, in_channels_ = 0, reduction_ = 0, input_length_ = 0, output_length_ = 0;
  int32_t input_fl_ = 0, weight_fl_ = 0, output_fl_ = 0, q_min_ = 0, q_max_ = 0;
  float fmin_ = -INFINITY, fmax_ = INFINITY;
  uint32_t index_bits_ = 0;
  size_t codebook_size_ = 0;  // codebook: centroids (of the layer's table, or of each row's int8 table)
  uint32_t seed_ = 0;         // hashed: the index hash's seed
  // The layer's own copies of the weights, checked.
  std::vector<int16_t> w16_;
  std::vector<int8_t> w8_;  // fixed8 weights / sparse int8 values / int8 codebooks [rows][size]
  std::vector<int64_t> bias64_;
  std::vector<int32_t> bias32_;
  std::vector<uint32_t> bits_a_, bits_b_;      // binary bits / ternary nonzero, sign / CSR offsets, columns
  std::vector<uint64_t> bits64_;               // xnor weight bits
  std::vector<uint64_t> input_bits_;           // xnor: the packed input of the current run (kept to reuse)
  std::vector<float> planes_buffer_;           // sparse planes: the packed input of the current run (same)
  std::vector<float> scale_, workspace_;       // xnor input scales; sparse / codebook per-thread workspace
  std::vector<int16_t> workspace16_;           // sparse int8: per-thread workspace
  std::vector<float> alpha_, fbias_, values_;  // alpha, codebook or buckets; bias; CSR / expanded values
  std::vector<uint8_t> u8_;                    // codebook indices
  const char* kernel_ = "";
  const qf16_conv2d_variant* qf16_ = nullptr;
  const qf8_conv2d_variant* qf8_ = nullptr;
  const bin_conv2d_variant* bin_ = nullptr;
  const tern_conv2d_variant* tern_ = nullptr;
  const xnor_conv2d_variant* xnor_ = nullptr;
  xnor_pack_fn xnor_pack_ = nullptr;
  xnor_pack_qs8_fn xnor_pack_qs8_ = nullptr;
  const sparse_f32_variant* sparse_ = nullptr;
  qs8_conv2d_op* qs8_dense_ = nullptr;  // fixed8 / int8 ternary on the int8 operators (owned), or null
  f32_conv2d_op* f32_dense_ = nullptr;  // fp32 binary / ternary / codebook on the fp32 operators, or null
  size_t expanded_bytes_ = 0;           // the dense weights those operators packed
  bool planes_ = false;                 // fp32 sparse conv on the planes kernel (stride 1)
  bool rows_ = false;                   // narrow fc: expanded rows (values_) on the dense-row kernel
  static constexpr size_t kRowsMaxOutputs = 16;
  std::vector<uint32_t> plane_offsets_;  // per nonzero, for the planes kernel
  const cb_conv2d_variant* cb_ = nullptr;
  const hashed_f32_variant* hashed_ = nullptr;
};

// A fixed-point array: an Int16Array (fixed16) or an Int8Array (fixed8); *wide says which.
View FixedPointArray(const Napi::Object& args, const char* name, bool* wide) {
  const Napi::Value value = args.Get(name);
  *wide = value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_int16_array;
  return Array(args.Env(), value, name, {*wide ? napi_int16_array : napi_int8_array},
               "an Int16Array or Int8Array");
}

// The element-wise conversions (fixedPointQuantize, fixedPointDequantize): the output as long as the input
// (both may be empty, even detached), the input attached, no aliasing; then the re-read before C runs.
void ExpectConversionOperands(Napi::Env env, const View& input, const View& output) {
  ExpectLength(env, output, input.length, "input.length", kEmptyAllowed);
  if (input.length != 0 && input.data == nullptr)
    ThrowRange(env, "an array with an attached buffer", "input", "a detached buffer");
  ExpectNoOverlap(env, output, {&input});
  ExpectUnchanged(env, {&input, &output});
}

// fixedPointQuantize({ input: Float32Array, output: Int16Array | Int8Array, fractionalLength,
//                      rounding?: 'nearest' | 'stochastic', seed?, firstIndex? }): the trainer's quantizers.
BoundOperator FixedPointQuantize(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const Napi::Value rounding_value = args.Get("rounding");
  const std::string rounding =
      rounding_value.IsUndefined()
          ? "nearest"
          : (rounding_value.IsString() ? rounding_value.As<Napi::String>().Utf8Value() : "");
  if (rounding != "nearest" && rounding != "stochastic")
    ThrowType(env, "'nearest', 'stochastic' or undefined", "rounding", rounding_value);
  const int32_t fl = static_cast<int32_t>(Integer(args, "fractionalLength", -64, 64));
  const bool stochastic = rounding == "stochastic";
  const uint32_t seed = static_cast<uint32_t>(stochastic ? Integer(args, "seed", 0, UINT32_MAX) : 0);
  const uint32_t first = static_cast<uint32_t>(Integer(args, "firstIndex", 0, UINT32_MAX, true, 0));
  const View input = Field(args, "input", napi_float32_array);
  bool wide = false;
  const View output = FixedPointArray(args, "output", &wide);
  ExpectConversionOperands(env, input, output);
  const size_t n = input.length;
  const auto run = [n, wide, stochastic, fl, seed, first](const void* const* inputs, void* const* outputs,
                                                          whittle_threadpool*) {
    if (n == 0) return;
    const float* in = static_cast<const float*>(inputs[0]);
    if (wide) {
      int16_t* out = static_cast<int16_t*>(outputs[0]);
      stochastic ? qf16_quantize_stochastic(n, in, fl, seed, first, out)
                 : qf16_quantize_nearest(n, in, fl, out);
    } else {
      int8_t* out = static_cast<int8_t*>(outputs[0]);
      stochastic ? qf8_quantize_stochastic(n, in, fl, seed, first, out)
                 : qf8_quantize_nearest(n, in, fl, out);
    }
  };
  return {{input}, {output}, run};
}

// fixedPointDequantize({ input: Int16Array | Int8Array, fractionalLength, output: Float32Array })
BoundOperator FixedPointDequantize(const Napi::Object& args) {
  Napi::Env env = args.Env();
  const int32_t fl = static_cast<int32_t>(Integer(args, "fractionalLength", -100, 100));
  bool wide = false;
  const View input = FixedPointArray(args, "input", &wide);
  const View output = Field(args, "output", napi_float32_array);
  ExpectConversionOperands(env, input, output);
  const size_t n = input.length;
  const auto run = [n, wide, fl](const void* const* inputs, void* const* outputs, whittle_threadpool*) {
    if (n == 0) return;
    float* out = static_cast<float*>(outputs[0]);
    wide ? qf16_dequantize(n, static_cast<const int16_t*>(inputs[0]), fl, out)
         : qf8_dequantize(n, static_cast<const int8_t*>(inputs[0]), fl, out);
  };
  return {{input}, {output}, run};
}

}  // namespace

void RegisterFormatKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("FormatLayer", FormatLayer::Define(env));
  RegisterOperator(env, exports, "fixedPointQuantize", FixedPointQuantize);
  RegisterOperator(env, exports, "fixedPointDequantize", FixedPointDequantize);
}

}  // namespace whittle
