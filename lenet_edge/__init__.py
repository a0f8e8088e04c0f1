"""lenet-edge: train LeNet-5 on MNIST, export it for phones, prove and measure every export."""

__version__ = "0.1.0"
