#ifndef MEGREZ_ROPE_ANGLE_GLSL
#define MEGREZ_ROPE_ANGLE_GLSL
// cos and sin of the RoPE angle pos * theta^(-2i/Dh), accurate to ~1e-7 for any 32-bit pos.
//
// Why not cos(float(pos) * inv_freq): at pos 32000 an fp32 angle alone is off by up to
// 2e-3 rad (its ulp), and GLSL's sin/cos only promise 2^-11 absolute error. Instead the host
// stores, per frequency, the turns per position g = theta^(-2i/Dh) / (2 pi) as a 64-bit
// fixed-point fraction (uvec2: x = low word, y = high word). pos * g mod 1 is then exact
// integer arithmetic; only the residual within the nearest quarter turn (|r| <= pi/4) goes
// to floating point, where short minimax polynomials (Cephes' sinf/cosf coefficients) give
// sin and cos to about one ulp. Used by rope.comp and kv_store.comp.

const float ROPE_TWO_PI_OVER_2POW32 = 1.4629180792671596e-9;   // 2 pi / 2^32
const float ROPE_TWO_PI_OVER_2POW64 = 3.4061215800865545e-19;  // 2 pi / 2^64

// Returns vec2(cos, sin) of pos * (2 pi g).
vec2 rope_cos_sin(uint pos, uvec2 g) {
  // frac(pos * g) in units of 2^-64 turns: high word `turns`, low word `low`.
  uint carry, low;
  umulExtended(pos, g.x, carry, low);
  uint turns = pos * g.y + carry;  // wraps mod 2^32: whole turns drop out exactly
  // Nearest quarter turn, and the signed remainder in [-2^29, 2^29) units of 2^-32 turns.
  uint quadrant = (turns + 0x20000000u) >> 30;
  int remainder = int(turns - (quadrant << 30));
  float r = float(remainder) * ROPE_TWO_PI_OVER_2POW32 + float(low) * ROPE_TWO_PI_OVER_2POW64;
  float z = r * r;
  float s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  float c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  switch (quadrant & 3u) {
    case 0u: return vec2(c, s);
    case 1u: return vec2(-s, c);
    case 2u: return vec2(-c, -s);
    default: return vec2(s, -c);
  }
}

#endif
