"""The networks of the paper: BC-ResNet-Mod (Table 1) and Table 2's comparison systems."""
from tinyasc.models.bcresnet import BCResNet
from tinyasc.models.bcresnet_mod import NORMS, BCResBlock, BCResNetMod, count_parameters
from tinyasc.models.cpresnet import CPResNet

__all__ = ["BCResBlock", "BCResNet", "BCResNetMod", "CPResNet", "NORMS", "count_parameters"]
