// A cap on callers held open waiting for commands: REST ?wait=true, gRPC wait and WatchCommands
// streams together. Each holds a listener on the command bus and a socket; without a cap, a
// client opening thousands of them would take the control plane's memory and its event loop.
export interface WaitGate {
  /** a release function, or null when the gate is full */
  enter(): (() => void) | null;
  open(): number;
}

export function createWaitGate(max: number): WaitGate {
  let open = 0;
  return {
    enter() {
      if (open >= max) return null;
      open += 1;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        open -= 1;
      };
    },
    open: () => open,
  };
}
