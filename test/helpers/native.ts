// Which test suites also run on the native engine: ["native"] when its addon is built and loads
// here, else [] (test/kernels/native-gemm.test.ts fails a CI run where it is missing).

import type { KernelsName } from "../../src/kernels/kernels.js";
import { nativeAvailability } from "../../src/kernels/native/index.js";

export const NATIVE_ENGINES: KernelsName[] = nativeAvailability().ok ? ["native"] : [];
