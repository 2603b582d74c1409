// A small path router (history API): the control plane answers index.html for every console path,
// so /sites/texas-1 loads on a reload too (control-plane/http/static.ts).
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set<() => void>();
export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  for (const f of listeners) f();
}
addEventListener('popstate', () => listeners.forEach((f) => f()));

export function usePath(): string {
  const [p, setP] = useState(location.pathname);
  useEffect(() => {
    const f = () => setP(location.pathname);
    listeners.add(f);
    return () => void listeners.delete(f);
  }, []);
  return p;
}

/** '/sites/:id' against '/sites/texas-1' → { id: 'texas-1' }, or null */
export function match(pattern: string, path: string): Record<string, string> | null {
  const a = pattern.split('/').filter(Boolean);
  const b = path.split('/').filter(Boolean);
  if (a.length !== b.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.startsWith(':')) params[a[i]!.slice(1)] = decodeURIComponent(b[i]!);
    else if (a[i] !== b[i]) return null;
  }
  return params;
}

/** an in-app link: no reload */
export function Link(props: { href: string; children: any; class?: string; testId?: string }) {
  return (
    <a
      href={props.href}
      class={props.class}
      data-testid={props.testId}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}
