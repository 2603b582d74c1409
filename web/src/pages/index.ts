// Every page of the console: its path, its title in the nav (none: not in the nav), and the
// permission a key needs to see it (control-plane/auth/roles.ts). Add a page here (web/README.md).
import type { FunctionComponent } from 'preact';
import type { PageProps } from './page.js';
import { CommandsPage } from './Commands.js';
import { DevicePage } from './Device.js';
import { EconomicsPage } from './Economics.js';
import { FleetPage } from './Fleet.js';
import { GridEventsPage } from './GridEvents.js';
import { SitePage } from './Site.js';
import { WorkloadsPage } from './Workloads.js';

export type { PageProps } from './page.js';

export interface PageSpec {
  path: string;
  nav?: string;
  perm: string;
  component: FunctionComponent<PageProps>;
}

export const PAGES: PageSpec[] = [
  { path: '/', nav: 'Fleet', perm: 'fleet.read', component: FleetPage },
  { path: '/sites/:id', perm: 'fleet.read', component: SitePage },
  { path: '/devices/:id', perm: 'fleet.read', component: DevicePage },
  { path: '/economics', nav: 'Economics', perm: 'fleet.read', component: EconomicsPage },
  { path: '/workloads', nav: 'Workloads', perm: 'workloads.read', component: WorkloadsPage },
  { path: '/grid', nav: 'Grid events', perm: 'fleet.read', component: GridEventsPage },
  { path: '/commands', nav: 'Commands', perm: 'fleet.read', component: CommandsPage },
];
