// Progress of a long wait, on stderr so stdout stays the result: on a terminal one line that a
// spinner keeps redrawing in place; otherwise a plain line each time the text changes.
export interface Progress {
  update(line: string): void;
  /** clears the spinner line; `last` is printed as a plain line */
  done(last?: string): void;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function createProgress(out: NodeJS.WriteStream = process.stderr): Progress {
  let current = '';
  let finished = false;
  if (!out.isTTY) {
    return {
      update(line) {
        if (finished || line === current) return;
        current = line;
        out.write(`${line}\n`);
      },
      done(last) {
        if (finished) return;
        finished = true;
        if (last && last !== current) out.write(`${last}\n`);
      },
    };
  }
  let frame = 0;
  const draw = () => {
    const line = `${FRAMES[frame++ % FRAMES.length]} ${current}`;
    out.write(`\r\x1b[K${[...line].slice(0, (out.columns || 80) - 1).join('')}`);
  };
  const timer = setInterval(draw, 100);
  timer.unref();
  // Ctrl-C mid-wait: the spinner's line is cleared before the default exit (128 + SIGINT)
  const onInt = () => {
    out.write('\r\x1b[K');
    process.exit(130);
  };
  process.once('SIGINT', onInt);
  return {
    update(line) {
      if (finished) return;
      current = line;
      draw();
    },
    done(last) {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      process.off('SIGINT', onInt);
      out.write('\r\x1b[K');
      if (last) out.write(`${last}\n`);
    },
  };
}
