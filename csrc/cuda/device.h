// The CUDA device backend's entry points. Without -DPYLLONG_CUDA=ON they report that no
// CUDA backend was built, so callers need no #ifdefs.
#pragma once
#include <string>

namespace pyllong::cuda {

bool built();                    // compiled with the CUDA backend
int device_count();              // visible devices; 0 when none or not built
std::string device_name(int i);  // throws InvalidArgument for a bad index

}  // namespace pyllong::cuda
