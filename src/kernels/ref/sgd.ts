// Reference SGD step in place, with torch.optim.SGD's semantics and order of operations
// (torch/optim/sgd.py _single_tensor_sgd, PyTorch 2.x, maximize=False):
//   d   <- g + wd * p                              grad.add(param, alpha=weight_decay)
//   buf <- d on the first step                     momentum_buffer = clone(grad)
//   buf <- mu * buf + (1 - dampening) * d          buf.mul_(momentum).add_(grad, alpha=1-dampening)
//   d   <- d + mu * buf (nesterov), else buf
//   p   <- p - lr * d                              param.add_(grad, alpha=-lr)
// Every stored value is rounded to float32 (Math.fround) as torch stores it.
//
// Legend: P parameters; param, grad, buf all (P). buf is null without momentum.

import type { SGDOptions } from "../kernels.js";

export function sgd(
  param: Float32Array,
  grad: Float32Array,
  buf: Float32Array | null,
  options: SGDOptions,
): void {
  const f = Math.fround;
  const { lr, momentum: mu, dampening, nesterov, weightDecay: wd, first } = options;
  for (let j = 0; j < param.length; j++) {
    let d = wd !== 0 ? f(grad[j] + wd * param[j]) : grad[j];
    if (buf !== null) {
      buf[j] = first ? d : f(f(mu * buf[j]) + (1 - dampening) * d);
      d = nesterov ? f(d + mu * buf[j]) : buf[j];
    }
    param[j] = f(param[j] - lr * d);
  }
}
