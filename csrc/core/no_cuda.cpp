// Stand-ins for the CUDA backend's entry points when it is not built (PYLLONG_CUDA off).
#ifndef PYLLONG_CUDA
#include "core/error.h"
#include "cuda/device.h"

namespace pyllong::cuda {

bool built() { return false; }
int device_count() { return 0; }
std::string device_name(int i) {
    throw InvalidArgument("pyllong was built without CUDA; rebuild with CMAKE_ARGS=-DPYLLONG_CUDA=ON");
}

}  // namespace pyllong::cuda
#endif
