// First-order lag (an RC low-pass): the exact solution of dx/dt = (target - x) / tau over dt,
// so the result does not depend on how a time span is cut into steps. Used for thermal mass,
// fan spin-up and power-supply settling.
export function firstOrderLag(current: number, target: number, dtS: number, tauS: number): number {
  if (tauS <= 0) return target;
  return target + (current - target) * Math.exp(-dtS / tauS);
}

export function clamp(x: number, min: number, max: number): number {
  return x < min ? min : x > max ? max : x;
}
