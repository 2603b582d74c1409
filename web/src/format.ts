export const kw = (w: number | null | undefined) => (w === null || w === undefined ? '–' : `${(w / 1000).toFixed(1)} kW`);
export const num = (v: number | null | undefined, digits = 1, unit = '') => (v === null || v === undefined || Number.isNaN(v) ? '–' : `${v.toFixed(digits)}${unit ? ` ${unit}` : ''}`);
export const usd = (v: number | null | undefined, digits = 2) => (v === null || v === undefined ? '–' : `$${v.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits })}`);
export const ago = (iso: string | null | undefined) => {
  if (!iso) return '–';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : new Date(iso).toLocaleString();
};
export const secs = (iso: string) => Date.parse(iso) / 1000;
