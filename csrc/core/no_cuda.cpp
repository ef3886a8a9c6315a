// Stand-ins for the CUDA backend's entry points when it is not built (PYLLONG_CUDA off).
#ifndef PYLLONG_CUDA
#include "core/error.h"
#include "cuda/backend.h"
#include "cuda/device.h"

namespace pyllong::cuda {

bool built() { return false; }
int device_count() { return 0; }
std::string device_name(int i) {
    throw InvalidArgument("pyllong was built without CUDA; rebuild with CMAKE_ARGS=-DPYLLONG_CUDA=ON");
}

namespace {
[[noreturn]] void no_cuda() {
    throw DeviceError("this pyllong was built without CUDA, so n_gpu_layers must be 0; reinstall with "
                      "CMAKE_ARGS=-DPYLLONG_CUDA=ON pip install . on a machine with nvcc");
}
}  // namespace

std::unique_ptr<DeviceLayers> make_device_layers(const HParams&, const ModelWeights&, const DeviceLayersParams&) {
    no_cuda();
}
std::vector<float> matmul_probe(GGMLType, const uint8_t*, int64_t, int64_t, const float*, int64_t) { no_cuda(); }
std::vector<float> attention_probe(const float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t,
                                   const RopeParams&, const SelfExtend&, int64_t) {
    no_cuda();
}

}  // namespace pyllong::cuda
#endif
