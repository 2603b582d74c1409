/** reported in Hello and the retained status; bump with package.json */
export const AGENT_VERSION = '0.1.0';
