// Shared types of the reference kernels. Every reference kernel is a pure function on typed arrays,
// generic over Float32Array (what the engine stores) and Float64Array (what the finite-difference
// tests use), so one definition serves as both the oracle and the gradient-checked model.

/** A float buffer a reference kernel reads or writes. */
export type Floats = Float32Array | Float64Array;
