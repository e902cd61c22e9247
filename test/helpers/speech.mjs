// Voiced speech without a recording (no speech corpus ships on npm): a glottal pulse train at a
// drifting pitch through three formant resonators, in syllables (3 per second) and phrases (1.2 s
// of speech, 1.2 s of silence), over faint noise, peak 0.5. Silero VAD gives it speech
// probabilities over the whole range, rising and falling with the syllables: what a test of a
// voice-activity model's quantization needs. Plain JavaScript so that the benches share it.

/** A 32-bit xorshift generator in [0, 1). */
function xorshift(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/** `n` samples at `rate` Hz. */
export function voicedSpeech(n, rate, seed) {
  const r = xorshift(seed);
  const out = new Float32Array(n);
  const resonators = [[700, 110], [1220, 120], [2600, 160]].map(([f, bw]) => {
    const radius = Math.exp((-Math.PI * bw) / rate);
    return { a1: 2 * radius * Math.cos((2 * Math.PI * f) / rate), a2: -radius * radius, y1: 0, y2: 0 };
  });
  let phase = 0;
  let f0 = 120;
  let target = 120;
  const step = Math.floor(rate * 0.15);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    if (i % step === 0) target = 100 + 80 * r();
    f0 += (target - f0) * 0.001;
    phase += f0 / rate;
    let excitation = 0.02 * (r() - 0.5);
    if (phase >= 1) {
      phase -= 1;
      excitation += 1;
    }
    let y = 0;
    for (const q of resonators) {
      const v = excitation + q.a1 * q.y1 + q.a2 * q.y2;
      q.y2 = q.y1;
      q.y1 = v;
      y += v;
    }
    const syllable = Math.max(0, Math.sin(2 * Math.PI * 3 * t));
    const phrase = Math.floor(t / 1.2) % 2 === 0 ? 1 : 0;
    out[i] = 0.05 * y * syllable * phrase + 0.002 * (r() - 0.5);
  }
  let peak = 0;
  for (const v of out) peak = Math.max(peak, Math.abs(v));
  for (let i = 0; i < n; i++) out[i] = (out[i] * 0.5) / peak;
  return out;
}
