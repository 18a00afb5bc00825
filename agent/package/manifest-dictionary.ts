// The preset dictionary of a dictionary-deflated manifest (format 1.5, ManifestEncoding.deflateDictionary).
//
// A compressed small model's manifest is a third of its file: LeNet-5 at 35x is 7.1 KB, of which 1.3 KB is
// its deflated JSON. Most of that JSON is the same in every package: the schema's keys, the op and
// number-format names, the trainer's layer names, the built-in data set's labels and preprocessing. Deflate
// cannot reference what it has not yet seen in the stream, so a small manifest pays for each of those
// strings once; with this text as deflate's preset dictionary (RFC 1950's FDICT, zlib's `dictionary`) it
// references them from the start (LeNet-5's manifest 1,324 -> ~700 bytes, docs/format.md).
//
// FROZEN: a package records that it used "the dictionary", not which, so these bytes are part of format 1.5.
// Never edit a fragment, its order, or the lists below (they are copies, not the live op list: a new op does
// not change them); test/agent/package/compact-manifest.test.ts pins the SHA-256. A better dictionary would
// be a new manifest encoding and a new minor.
//
// Deflate reaches 32 KiB back, and nearer matches cost fewer bits: the fragments that nearly every package
// has come last.

const OPS_V1 =
  'conv2d fully_connected conv_transpose qconv2d conv2d_integer qfully_connected matmul qmatmul matmul_integer ' +
  'max_pool avg_pool global_avgpool add mul qadd qmul clip leaky_relu sigmoid sub div pow prelu sqrt exp tanh ' +
  'erf hard_sigmoid hard_swish silu gelu concat reshape transpose softmax identity channel_shuffle pad slice ' +
  'split gather expand quantize_linear dequantize_linear batch_norm layer_norm instance_norm reduce_mean ' +
  'reduce_max resize';
const NUMBER_FORMATS_V1 =
  'f32 int8 fixed16 fixed8 binary xnor ternary sparse codebook hashed sparse-codebook';
const FASHION_MNIST_LABELS_V1 =
  '"T-shirt/top","Trouser","Pullover","Dress","Coat","Sandal","Shirt","Sneaker","Bag","Ankle boot"';

const FRAGMENTS_V1: readonly string[] = [
  OPS_V1.split(' ')
    .map((op) => `"op":"${op}"`)
    .join(','),
  NUMBER_FORMATS_V1.split(' ')
    .map((format) => `"format":"${format}"`)
    .join(','),
  '{"kind":"codebook","size":16},{"kind":"hashed","buckets":,"seed":0},{"kind":"sparse","nnz":},' +
    '{"kind":"binary"},{"kind":"ternary"},{"kind":"xnor"},{"kind":"raw"},{"kind":"fixed8","fracBits":',
  '"dtype":"i8","dtype":"u8","dtype":"i32","dtype":"bool","layout":"NCHW","layout":"NC","layout":"other",' +
    '"resize":"center-crop","resize":"stretch","channels":3,"mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]',
  '"attrs":{"axis":1},"attrs":{"alpha":0.2},"attrs":{"epsilon":0.001},"attrs":{"perm":[0,3,1,2]},' +
    '"attrs":{"kernel":[3,3],"strides":[1,1],"pads":[1,1,1,1]},"attrs":{"min":0,"max":6},"input_fl":,"output_fl":',
  '"name":"batch_normalization_BatchNormalization","name":"depthwise_conv2d_DepthwiseConv2D",' +
    '"name":"global_average_pooling2d_GlobalAveragePooling2D","name":"add_Add","name":"concatenate_Concatenate",' +
    '"name":"activation_Activation","name":"dropout_Dropout"',
  '{"format":"whittle-package","version":1,"model":{"id":"","version":"1","name":" (prune, kmeans, huffman)"},' +
    '"target":{"deviceClass":"any","cpuFamily":"any"},"accuracy":{"dataset":"fashion-mnist test","images":10000,' +
    '"top1":0.',
  `"labels":[${FASHION_MNIST_LABELS_V1}],`,
  '"inputs":[{"name":"input","tensor":0,"layout":"NHWC","preprocessing":{"kind":"image","width":28,"height":28,' +
    '"channels":1,"mean":[0],"std":[1]}}],"outputs":[{"name":"output","tensor":',
  `"probe":{"input":"${'A'.repeat(120)}","expectedClass":`,
  '"tensors":[{"name":"input","dtype":"f32","shape":[1,28,28,1]},',
  '{"name":"max_pooling2d_MaxPooling2D1","op":"max_pool","format":"f32","inputs":[],"outputs":[],' +
    '"attrs":{"kernel":[2,2],"strides":[2,2],"pads":[0,0,0,0]}},{"name":"flatten_Flatten1","op":"reshape",' +
    '"format":"f32","inputs":[],"outputs":[],"attrs":{"shape":[0,',
  '"nodes":[{"name":"conv2d_Conv2D1","op":"conv2d","format":"f32","inputs":[0,1,2],"outputs":[3],' +
    '"attrs":{"strides":[1,1],"dilations":[1,1],"pads":[0,0,0,0],"groups":1}},{"name":"conv2d_Conv2D1/relu",' +
    '"op":"clip","format":"f32","inputs":[],"outputs":[],"attrs":{"min":0}},{"name":"dense_Dense1",' +
    '"op":"fully_connected","format":"f32","inputs":[],"outputs":[],"attrs":{}},{"name":"softmax","op":"softmax",' +
    '"format":"f32","inputs":[',
  '{"name":"conv2d_Conv2D1.out","dtype":"f32","shape":[1,},{"name":"conv2d_Conv2D1/relu.out","dtype":"f32",' +
    '"shape":[1,},{"name":"max_pooling2d_MaxPooling2D1.out","dtype":"f32","shape":[1,},' +
    '{"name":"dense_Dense1.out","dtype":"f32","shape":[1,},{"name":"dense_Dense1/relu.out","dtype":"f32","shape":[1,',
  '{"name":"conv2d_Conv2D1.weight","dtype":"f32","shape":[],"section":1,"encoding":{"kind":"fixed16",' +
    '"fracBits":15}},{"name":"conv2d_Conv2D1.bias","dtype":"f32","shape":[],"section":2,"encoding":' +
    '{"kind":"fixed16","fracBits":',
  '{"name":"dense_Dense1.weight","dtype":"f32","shape":[],"section":,"encoding":{"kind":"sparse-codebook",' +
    '"size":8,"gapBits":5,"nnz":,"gaps":,"indexStreamBytes":,"gapStreamBytes":}},{"name":"dense_Dense1.bias",' +
    '"dtype":"f32","shape":[],"section":,"encoding":{"kind":"fixed16","fracBits":16}},',
];

/** The dictionary's bytes (UTF-8; ASCII throughout). */
export const MANIFEST_DICTIONARY_V1: Buffer = Buffer.from(FRAGMENTS_V1.join(''), 'utf8');
