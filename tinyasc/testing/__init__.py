"""Public testing helpers: gradient checks learners can reuse on their own ops."""
from tinyasc.testing.gradcheck import GradcheckResult, assert_gradients, check_backward_properties, gradcheck

__all__ = ["GradcheckResult", "assert_gradients", "check_backward_properties", "gradcheck"]
