"""Modules and layers (torch.nn names)."""
from tinyasc import functional
from tinyasc.nn.layers import (AvgPool2d, BatchNorm2d, BatchNormReLU2d, Conv2d, ConvTranspose2d, Dropout, Dropout2d,
                               Identity, LeakyReLU, Linear, MaxPool2d, ReLU, Sigmoid, SiLU, Tanh)
from tinyasc.nn.module import Module, ModuleList, Parameter, Sequential
from tinyasc.nn.norm import FreqIN, GlobalFreqNorm, ResNorm, SubSpectralNorm

__all__ = ["AvgPool2d", "BatchNorm2d", "BatchNormReLU2d", "Conv2d", "ConvTranspose2d", "Dropout", "Dropout2d",
           "FreqIN", "GlobalFreqNorm", "Identity", "LeakyReLU", "Linear", "MaxPool2d", "Module", "ModuleList",
           "Parameter", "ReLU", "ResNorm", "Sequential", "Sigmoid", "SiLU", "SubSpectralNorm", "Tanh",
           "functional"]
