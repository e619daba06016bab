"""The networks of the paper: BC-ResNet-Mod (Table 1)."""
from tinyasc.models.bcresnet_mod import NORMS, BCResBlock, BCResNetMod, count_parameters

__all__ = ["BCResBlock", "BCResNetMod", "NORMS", "count_parameters"]
