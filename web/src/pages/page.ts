// What every page is given: the signed-in key and the path's :params. Apart from index.ts (which
// imports every page) so that no page imports the list it is in.
import type { Me } from '../api.js';

export interface PageProps {
  me: Me;
  params: Record<string, string>;
}
