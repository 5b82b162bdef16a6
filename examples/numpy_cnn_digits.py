"""A small CNN in plain NumPy, with cypool's pooling layers, on scikit-learn's 8x8 digits.

    conv 3x3 (1 -> 16) - ReLU - max pool 2 - conv 3x3 (16 -> 32) - ReLU - max pool 2
    - dense (128 -> 10) - softmax cross-entropy, trained with Adam (cosine learning rate)

Convolution is im2col plus one matrix product; everything else is NumPy
except the pooling, which is ``cypool.layers.MaxPool2d``.  The script trains
the network twice from the same initial weights: once with cypool's pooling
and once with the usual vectorised NumPy pooling (reshape, argmax and a
scatter), prints the test accuracy after every epoch, and the time each run
spent in pooling.  The data are the 1797 digits bundled with scikit-learn
(``sklearn.datasets.load_digits``), read from the installed package: no
download.

Run it with ``make example`` (which installs the ``examples`` extra), or
``python examples/numpy_cnn_digits.py [--epochs N] [--threads N]``.  The
batches are small (32 images), so on a machine whose cores are busy with
other work, ``--threads 1`` spares cypool's calls from waiting for a second
thread that is not scheduled.
"""

import argparse
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import cypool
from cypool.layers import MaxPool2d


# ------------------------------------------------------------------ layers

class Conv3x3:
    """3x3 convolution, stride 1, zero padding 1, by im2col."""

    def __init__(self, in_channels, out_channels, rng):
        fan_in = in_channels * 9
        self.params = {
            "weight": (rng.standard_normal((fan_in, out_channels)) * np.sqrt(2 / fan_in))
            .astype(np.float32),
            "bias": np.zeros(out_channels, np.float32),
        }
        self.grads = {}

    def forward(self, x):
        n, c, h, w = x.shape
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        # (N, C, H, W, 3, 3) windows -> rows of C*9 values, one per output pixel
        columns = sliding_window_view(padded, (3, 3), axis=(2, 3))
        self.columns = columns.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9)
        self.shape = x.shape
        out = self.columns @ self.params["weight"] + self.params["bias"]
        return out.reshape(n, h, w, -1).transpose(0, 3, 1, 2)

    def backward(self, grad_out):
        n, c, h, w = self.shape
        grad_rows = grad_out.transpose(0, 2, 3, 1).reshape(n * h * w, -1)
        self.grads["weight"] = self.columns.T @ grad_rows
        self.grads["bias"] = grad_rows.sum(axis=0)
        grad_columns = (grad_rows @ self.params["weight"].T).reshape(n, h, w, c, 3, 3)
        grad_padded = np.zeros((n, c, h + 2, w + 2), grad_out.dtype)
        for i in range(3):       # col2im: each kernel tap adds back a shifted image
            for j in range(3):
                grad_padded[:, :, i:i + h, j:j + w] += grad_columns[..., i, j].transpose(0, 3, 1, 2)
        return grad_padded[:, :, 1:-1, 1:-1]


class ReLU:
    params = grads = {}

    def forward(self, x):
        self.positive = x > 0
        return x * self.positive

    def backward(self, grad_out):
        return grad_out * self.positive


class Flatten:
    params = grads = {}

    def forward(self, x):
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad_out):
        return grad_out.reshape(self.shape)


class Dense:
    def __init__(self, in_features, out_features, rng):
        self.params = {
            "weight": (rng.standard_normal((in_features, out_features)) * np.sqrt(1 / in_features))
            .astype(np.float32),
            "bias": np.zeros(out_features, np.float32),
        }
        self.grads = {}

    def forward(self, x):
        self.input = x
        return x @ self.params["weight"] + self.params["bias"]

    def backward(self, grad_out):
        self.grads["weight"] = self.input.T @ grad_out
        self.grads["bias"] = grad_out.sum(axis=0)
        return grad_out @ self.params["weight"].T


class NumpyMaxPool2x2:
    """2x2 max pooling, stride 2, as NumPy code usually writes it."""

    params = grads = {}

    def forward(self, x):
        n, c, h, w = x.shape
        windows = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
        windows = windows.reshape(n, c, h // 2, w // 2, 4)
        self.shape = x.shape
        self.argmax = windows.argmax(axis=-1)[..., None]
        return np.take_along_axis(windows, self.argmax, axis=-1)[..., 0]

    def backward(self, grad_out):
        n, c, h, w = self.shape
        grad = np.zeros((n, c, h // 2, w // 2, 4), grad_out.dtype)
        np.put_along_axis(grad, self.argmax, grad_out[..., None], axis=-1)
        grad = grad.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
        return grad.reshape(n, c, h, w)


class Timed:
    """A layer whose forward and backward time is added to ``seconds``."""

    def __init__(self, layer):
        self.layer, self.seconds = layer, 0.0
        self.params = self.grads = {}

    def forward(self, x):
        start = time.perf_counter()
        out = self.layer.forward(x)
        self.seconds += time.perf_counter() - start
        return out

    def backward(self, grad_out):
        start = time.perf_counter()
        grad = self.layer.backward(grad_out)
        self.seconds += time.perf_counter() - start
        return grad


# ------------------------------------------------------------- the network

def build_network(pooling, seed):
    """The CNN; ``pooling`` is ``"cypool"`` or ``"numpy"``, the weights depend on ``seed`` only."""
    rng = np.random.default_rng(seed)

    def pool():
        return Timed(MaxPool2d(2) if pooling == "cypool" else NumpyMaxPool2x2())

    return [Conv3x3(1, 16, rng), ReLU(), pool(), Conv3x3(16, 32, rng), ReLU(), pool(),
            Flatten(), Dense(32 * 2 * 2, 10, rng)]


def forward(network, x):
    for layer in network:
        x = layer.forward(x)
    return x


def softmax_cross_entropy(logits, labels):
    """Mean loss and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    loss = -np.log(probabilities[np.arange(len(labels)), labels] + 1e-12).mean()
    grad = probabilities
    grad[np.arange(len(labels)), labels] -= 1
    return loss, grad / len(labels)


class Adam:
    def __init__(self, network, learning_rate=5e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.network, self.learning_rate = network, learning_rate
        self.beta1, self.beta2, self.eps, self.step_count = beta1, beta2, eps, 0
        self.moments = [{name: (np.zeros_like(p), np.zeros_like(p))
                         for name, p in layer.params.items()} for layer in network]

    def step(self):
        self.step_count += 1
        correction1 = 1 - self.beta1 ** self.step_count
        correction2 = 1 - self.beta2 ** self.step_count
        for layer, moments in zip(self.network, self.moments):
            for name, (m, v) in moments.items():
                grad = layer.grads[name]
                m *= self.beta1
                m += (1 - self.beta1) * grad
                v *= self.beta2
                v += (1 - self.beta2) * grad * grad
                step = (m / correction1) / (np.sqrt(v / correction2) + self.eps)
                layer.params[name] -= (self.learning_rate * step).astype(np.float32)


def load_data(seed=0):
    """Scikit-learn's bundled digits as float32 ``(N, 1, 8, 8)``, split 75/25 and
    standardised with the training images' mean and deviation."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images[:, None], digits.target, test_size=0.25, random_state=seed,
        stratify=digits.target)
    mean, deviation = x_train.mean(), x_train.std()
    return (((x_train - mean) / deviation).astype(np.float32),
            ((x_test - mean) / deviation).astype(np.float32), y_train, y_test)


def accuracy(network, images, labels, batch_size=256):
    predictions = [forward(network, images[i:i + batch_size]).argmax(axis=1)
                   for i in range(0, len(images), batch_size)]
    return float((np.concatenate(predictions) == labels).mean())


def train(pooling="cypool", epochs=12, batch_size=32, seed=0, data=None, report=print):
    """Train the CNN; returns ``(per-epoch test accuracies, seconds in pooling, total seconds)``."""
    x_train, x_test, y_train, y_test = load_data() if data is None else data
    network = build_network(pooling, seed)
    optimizer = Adam(network)
    peak_rate = optimizer.learning_rate
    order_rng = np.random.default_rng(seed)
    history = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        # cosine annealing: large steps first, small ones to settle at the end
        optimizer.learning_rate = peak_rate * 0.5 * (1 + np.cos(np.pi * (epoch - 1) / epochs))
        order = order_rng.permutation(len(x_train))
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            logits = forward(network, x_train[batch])
            _, grad = softmax_cross_entropy(logits, y_train[batch])
            for layer in reversed(network):
                grad = layer.backward(grad)
            optimizer.step()
        history.append(accuracy(network, x_test, y_test))
        report(f"  [{pooling:6s}] epoch {epoch:2d}: test accuracy {history[-1]:.4f}")
    total = time.perf_counter() - start
    pooling_seconds = sum(layer.seconds for layer in network if isinstance(layer, Timed))
    return history, pooling_seconds, total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None,
                        help="cypool's thread count (default: cypool.get_num_threads())")
    args = parser.parse_args(argv)
    if args.threads is not None:
        cypool.set_num_threads(args.threads)
    data = load_data()
    print(f"digits: {len(data[0])} training and {len(data[1])} test images of 8x8; "
          f"cypool uses up to {cypool.get_num_threads()} threads")
    results = {}
    for pooling in ("cypool", "numpy"):
        print(f"{pooling} pooling:")
        results[pooling] = train(pooling, args.epochs, data=data)
    print()
    print(f"{'pooling':8s} {'final accuracy':>15s} {'pooling time':>13s} {'total time':>11s}")
    for pooling, (history, pooling_seconds, total) in results.items():
        print(f"{pooling:8s} {history[-1]:15.4f} {pooling_seconds:12.3f}s {total:10.2f}s")
    ratio = results["numpy"][1] / results["cypool"][1]
    print(f"pooling with cypool took {1 / ratio:.2f}x the time of NumPy pooling "
          f"({ratio:.1f}x faster)")
    return results


if __name__ == "__main__":
    main()
