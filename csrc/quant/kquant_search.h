// Scale searches of ggml's reference K-quant quantizers (ggml-quants.c): given a
// sub-block of floats, pick a scale (and min) and the integer levels L minimizing a
// weighted squared error.
#pragma once
#include <cstdint>
#include <cstring>

namespace pyllong::quant {

constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest (ties to even) for |f| < 2^22, via the float mantissa, as ggml does.
inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    std::memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// Symmetric levels in [-nmax, nmax): L[i] = level + nmax, weights x^2, tries 19 scales
// around nmax/max. Returns the scale. x, L: (n,)
float make_qx_quants(int n, int nmax, const float* x, int8_t* L);

// Symmetric levels in [-nmax, nmax) refined coordinate-wise (weights x^2). L[i] = level + nmax.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L);

// Asymmetric levels L in [0, nmax] with x ~ scale*L - min: tries nstep+1 scales
// (nmax + rmin + rdelta*is)/(max-min), each refined by weighted least squares.
// *neg_min receives -min (>= 0). use_mad: weight absolute instead of squared error.
// x, weights, L, Laux: (n,)
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* neg_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad);

}  // namespace pyllong::quant
