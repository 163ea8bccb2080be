// Ctrl-C (SIGINT) and SIGTERM for long commands: never a silent exit that loses work or leaves the
// terminal broken.
//
// watchInterrupts() installs handlers until dispose(). While `graceful` is true (the training
// loop), the first signal only records itself (`received`) and prints that the run will stop after
// the current step; the caller polls `received`, saves, and throws InterruptedError. A signal while
// `graceful` is false, or a second signal, exits at once: the caller's onHardExit runs (stop the
// progress bar), the terminal is restored (line wrap and cursor back on, escape codes only on a
// terminal), one line says what happened, and the exit code is 128 + the signal number (130 for
// SIGINT, 143 for SIGTERM), as a shell reports a process killed by the signal.

const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
export type InterruptSignal = keyof typeof SIGNAL_EXIT_CODES;

/** Thrown by a command that stopped on a signal after saving; main() exits with `exitCode`. */
export class InterruptedError extends Error {
  readonly signal: InterruptSignal;
  readonly exitCode: number;
  constructor(signal: InterruptSignal, message: string) {
    super(message);
    this.name = "InterruptedError";
    this.signal = signal;
    this.exitCode = SIGNAL_EXIT_CODES[signal];
  }
}

/** Escape codes that undo a progress bar's terminal settings: line wrap on (DECAWM), cursor shown. */
const RESTORE_TERMINAL = "\x1b[?7h\x1b[?25h";

/** Turns line wrapping and the cursor back on when `stream` is a terminal. */
function restoreTerminal(stream: NodeJS.WriteStream = process.stderr): void {
  if (stream.isTTY) stream.write(RESTORE_TERMINAL);
}

export interface InterruptWatch {
  /** The first signal received while graceful, or null. */
  readonly received: InterruptSignal | null;
  /** While true, a first signal requests a stop instead of exiting. */
  graceful: boolean;
  dispose(): void;
}

export interface WatchOptions {
  /** Runs before a hard exit (e.g. stops the progress bar so it restores the terminal). */
  onHardExit?: () => void;
  /** What the graceful stop will do, printed on the first signal. */
  stopMessage?: string;
}

export function watchInterrupts(options: WatchOptions = {}): InterruptWatch {
  let received: InterruptSignal | null = null;
  const watch = {
    get received() {
      return received;
    },
    graceful: false,
    dispose() {
      process.removeListener("SIGINT", onInt);
      process.removeListener("SIGTERM", onTerm);
    },
  };
  const handle = (signal: InterruptSignal) => {
    if (watch.graceful && received === null) {
      received = signal;
      process.stderr.write(
        `\nloraga: ${signal} received; ${options.stopMessage ?? "stopping"} (press Ctrl-C again to quit at once)\n`,
      );
      return;
    }
    try {
      options.onHardExit?.();
    } finally {
      restoreTerminal();
      process.stderr.write(`\nloraga: ${signal}: stopped at once; nothing more was saved\n`);
      process.exit(SIGNAL_EXIT_CODES[signal]);
    }
  };
  const onInt = () => handle("SIGINT");
  const onTerm = () => handle("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  return watch;
}
