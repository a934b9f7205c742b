// Scalar reference implementations of every block: plain loops, double accumulation, written from
// the formulas and independently of the library's Eigen code (they share no helpers with it).
// Tensors are row-major std::vector<double>; shapes are given in the comments.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace llamablocks::test::reference {

using Vector = std::vector<double>;
using size = std::size_t;

template <class T>
Vector to_double(const T* data, size count) {
  return Vector(data, data + count);
}

/// x: [rows, dim], weight: [dim] -> [rows, dim]; y = x / sqrt(mean(x²) + eps) · weight
inline Vector rms_norm(const Vector& x, size rows, size dim, const Vector& weight, double eps) {
  Vector y(rows * dim);
  for (size r = 0; r < rows; ++r) {
    double sum = 0;
    for (size i = 0; i < dim; ++i) sum += x[r * dim + i] * x[r * dim + i];
    const double scale = 1.0 / std::sqrt(sum / double(dim) + eps);
    for (size i = 0; i < dim; ++i) y[r * dim + i] = x[r * dim + i] * scale * weight[i];
  }
  return y;
}

/// x: [rows, dim] -> [rows, dim]; y = (x − mean) / sqrt(var + eps) · weight + bias
inline Vector layer_norm(const Vector& x, size rows, size dim, const Vector& weight,
                         const Vector& bias, double eps) {
  Vector y(rows * dim);
  for (size r = 0; r < rows; ++r) {
    double mean = 0;
    for (size i = 0; i < dim; ++i) mean += x[r * dim + i];
    mean /= double(dim);
    double variance = 0;
    for (size i = 0; i < dim; ++i) variance += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
    variance /= double(dim);
    for (size i = 0; i < dim; ++i)
      y[r * dim + i] = (x[r * dim + i] - mean) / std::sqrt(variance + eps) * weight[i] + bias[i];
  }
  return y;
}

/// x: [rows, in], w: [out, in] -> [rows, out]; y = x wᵀ
inline Vector linear(const Vector& x, size rows, size in, const Vector& w, size out) {
  Vector y(rows * out, 0.0);
  for (size r = 0; r < rows; ++r)
    for (size o = 0; o < out; ++o) {
      double sum = 0;
      for (size i = 0; i < in; ++i) sum += x[r * in + i] * w[o * in + i];
      y[r * out + o] = sum;
    }
  return y;
}

/// gate, up: [n] -> silu(gate) · up
inline Vector swiglu_hidden(const Vector& gate, const Vector& up) {
  Vector h(gate.size());
  for (size i = 0; i < gate.size(); ++i) h[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
  return h;
}

/// x: [rows, dim] -> [rows, dim]; w2 (silu(w1 x) ⊙ w3 x)
inline Vector swiglu(const Vector& x, size rows, size dim, const Vector& w1, const Vector& w2,
                     const Vector& w3, size hidden) {
  const Vector h = swiglu_hidden(linear(x, rows, dim, w1, hidden), linear(x, rows, dim, w3, hidden));
  return linear(h, rows, hidden, w2, dim);
}

struct RopeSpec {
  size head_dim;
  double theta;
  bool interleaved;
  // LLaMA-3.1 scaling when factor > 0 and llama3; linear scaling when factor > 0 and !llama3.
  double factor = 0;
  bool llama3 = false;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  double original_context = 8192;
};

/// Angular frequency of pair j, after scaling.
inline double rope_frequency(const RopeSpec& spec, size j) {
  const double base = 1.0 / std::pow(spec.theta, double(2 * j) / double(spec.head_dim));
  if (spec.factor <= 0) return base;
  if (!spec.llama3) return base / spec.factor;
  const double wavelength = 2.0 * M_PI / base;
  const double long_limit = spec.original_context / spec.low_freq_factor;
  const double short_limit = spec.original_context / spec.high_freq_factor;
  if (wavelength < short_limit) return base;
  if (wavelength > long_limit) return base / spec.factor;
  const double s = (spec.original_context / wavelength - spec.low_freq_factor) /
                   (spec.high_freq_factor - spec.low_freq_factor);
  return (1 - s) * base / spec.factor + s * base;
}

/// x: [batch, tokens, heads, head_dim] rotated; token t at position start + t.
inline Vector rope(const Vector& x, size batch, size tokens, size heads, const RopeSpec& spec,
                   size start) {
  Vector y(x);
  const size d = spec.head_dim;
  for (size b = 0; b < batch; ++b)
    for (size t = 0; t < tokens; ++t)
      for (size h = 0; h < heads; ++h) {
        const size base = ((b * tokens + t) * heads + h) * d;
        for (size j = 0; j < d / 2; ++j) {
          const size first = spec.interleaved ? 2 * j : j;
          const size second = spec.interleaved ? 2 * j + 1 : j + d / 2;
          const double angle = double(start + t) * rope_frequency(spec, j);
          const double a = x[base + first];
          const double c = x[base + second];
          y[base + first] = a * std::cos(angle) - c * std::sin(angle);
          y[base + second] = a * std::sin(angle) + c * std::cos(angle);
        }
      }
  return y;
}

/// Causal attention of queries at positions start .. start+tokens−1 over keys 0 .. start+tokens−1.
/// q: [batch, tokens, n_heads, d]; k, v: [batch, start + tokens, n_kv_heads, d]
/// -> [batch, tokens, n_heads, d]. Query head h uses kv head h / (n_heads / n_kv_heads).
inline Vector attention(const Vector& q, const Vector& k, const Vector& v, size batch,
                        size tokens, size start, size n_heads, size n_kv_heads, size d) {
  const size keys = start + tokens;
  const size group = n_heads / n_kv_heads;
  Vector out(batch * tokens * n_heads * d, 0.0);
  std::vector<double> weights(keys);
  for (size b = 0; b < batch; ++b)
    for (size t = 0; t < tokens; ++t)
      for (size h = 0; h < n_heads; ++h) {
        const size g = h / group;
        const double* query = &q[((b * tokens + t) * n_heads + h) * d];
        const size visible = start + t + 1;
        double max_score = -INFINITY;
        for (size s = 0; s < visible; ++s) {
          const double* key = &k[((b * keys + s) * n_kv_heads + g) * d];
          double dot = 0;
          for (size i = 0; i < d; ++i) dot += query[i] * key[i];
          weights[s] = dot / std::sqrt(double(d));
          max_score = std::max(max_score, weights[s]);
        }
        double total = 0;
        for (size s = 0; s < visible; ++s) total += (weights[s] = std::exp(weights[s] - max_score));
        double* o = &out[((b * tokens + t) * n_heads + h) * d];
        for (size s = 0; s < visible; ++s)
          for (size i = 0; i < d; ++i)
            o[i] += weights[s] / total * v[((b * keys + s) * n_kv_heads + g) * d + i];
      }
  return out;
}

struct BlockWeights {
  Vector attention_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3;
};
struct BlockSpec {
  size dim, n_heads, n_kv_heads, head_dim, hidden;
  double eps;
  RopeSpec rope;
};

/// Full-sequence LLaMA block from position 0: x [batch, tokens, dim] -> [batch, tokens, dim].
inline Vector llama_block(const Vector& x, size batch, size tokens, const BlockSpec& s,
                          const BlockWeights& w) {
  const size rows = batch * tokens;
  const Vector normed = rms_norm(x, rows, s.dim, w.attention_norm, s.eps);
  const Vector q = rope(linear(normed, rows, s.dim, w.wq, s.n_heads * s.head_dim), batch, tokens,
                        s.n_heads, s.rope, 0);
  const Vector k = rope(linear(normed, rows, s.dim, w.wk, s.n_kv_heads * s.head_dim), batch, tokens,
                        s.n_kv_heads, s.rope, 0);
  const Vector v = linear(normed, rows, s.dim, w.wv, s.n_kv_heads * s.head_dim);
  const Vector context = attention(q, k, v, batch, tokens, 0, s.n_heads, s.n_kv_heads, s.head_dim);
  const Vector attended = linear(context, rows, s.n_heads * s.head_dim, w.wo, s.dim);
  Vector h(x);
  for (size i = 0; i < h.size(); ++i) h[i] += attended[i];
  const Vector ffn = swiglu(rms_norm(h, rows, s.dim, w.ffn_norm, s.eps), rows, s.dim, w.w1, w.w2,
                            w.w3, s.hidden);
  for (size i = 0; i < h.size(); ++i) h[i] += ffn[i];
  return h;
}

/// PE[position, 2i] = sin(position / base^(2i/dim)), PE[position, 2i+1] = cos(...): [positions, dim]
inline Vector sinusoidal_table(size positions, size dim, double base) {
  Vector table(positions * dim);
  for (size p = 0; p < positions; ++p)
    for (size i = 0; i < dim / 2; ++i) {
      const double angle = double(p) / std::pow(base, double(2 * i) / double(dim));
      table[p * dim + 2 * i] = std::sin(angle);
      table[p * dim + 2 * i + 1] = std::cos(angle);
    }
  return table;
}

}  // namespace llamablocks::test::reference
