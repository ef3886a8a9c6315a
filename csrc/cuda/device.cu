#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "cuda/common.cuh"
#include "cuda/device.h"

namespace pyllong::cuda {

bool built() { return true; }

int device_count() {
    int n = 0;
    // No driver or no device is not an error here: report zero devices.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

std::string device_name(int i) {
    if (i < 0 || i >= device_count())
        throw InvalidArgument("CUDA device " + std::to_string(i) + " does not exist (" +
                              std::to_string(device_count()) + " visible)");
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, i);
    return prop.name;
}

bool pdl_enabled() {
    static const bool on = [] {
        const char* env = std::getenv("PYLLONG_CUDA_PDL");
        if (env && std::strcmp(env, "0") == 0) return false;
        int dev = 0, major = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
            cudaGetLastError();
            return false;
        }
        return major >= 9;
    }();
    return on;
}

}  // namespace pyllong::cuda
