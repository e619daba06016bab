"""Knowledge distillation (paper 2.4 and 3.3): a trained teacher guides a new student.

The paper trains BC-ResNet-Mod-8 for 300 epochs, uses it as the teacher of a newly
initialised student (75.3% -> 76.3%, Table 2), then compresses the student. The loss
(Hinton et al.; the paper cites [21]) is

    loss = alpha * CE(z_s, y) + (1 - alpha) * T^2 * KL(p_t || softmax(z_s / T))

with KL averaged over the batch (reduction='batchmean'); T^2 keeps the soft term's
gradient, (1 - alpha) * T * (softmax(z_s / T) - p_t) / N, on the scale of the hard one's.
p_t are the teacher's class probabilities at temperature T, averaged over the models of
an ensemble (probabilities are averaged, not logits, as the DCASE ensembles do). y may be
class indices or Mixup's class probabilities: cross_entropy takes both, and the teacher
sees the same mixed input as the student.

The paper gives neither alpha nor T; the defaults (alpha 0.5, T 3) are ours.
"""

import numpy as np

from tinyasc import functional as F
from tinyasc import nn
from tinyasc.autograd import Tensor, no_grad

ALPHA = 0.5
TEMPERATURE = 3.0


def _check(alpha, temperature):
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def ensemble_probabilities(models, x, temperature=1.0):
    """Mean over `models` of softmax(logits / T) for the batch x (array or Tensor) -> N x K array.

    Evaluation mode and no graph, whatever mode the models were in (restored after).
    """
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise ValueError("an ensemble needs at least one model")
    x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    total = None
    with no_grad():
        for model in models:
            was_training = model.training
            model.eval()
            try:
                probs = F.softmax(model(x) / temperature, dim=1).data
            finally:
                model.train(was_training)
            total = probs.astype(np.float64) if total is None else total + probs
    return (total / len(models)).astype(x.dtype)


class Ensemble(nn.Module):
    """Models whose class probabilities are averaged (Table 3 ensembles two students).

    forward returns log(mean_k softmax(z_k)), so softmax(forward(x)) is the averaged
    probability: the ensemble drops into code that applies softmax to a model's output.
    """

    def __init__(self, models):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("an ensemble needs at least one model")
        classes = {getattr(m, "num_classes", None) for m in models}
        if len(classes) != 1:
            raise ValueError(f"ensemble members disagree on the number of classes: {sorted(map(str, classes))}")
        self.members = nn.ModuleList(models)
        self.num_classes = classes.pop()

    def forward(self, x):
        probs = [F.softmax(m(x), dim=1) for m in self.members]
        mean = probs[0]
        for p in probs[1:]:
            mean = mean + p
        return (mean / len(probs)).log()

    def probabilities(self, x, temperature=1.0):
        return ensemble_probabilities(list(self.members), x, temperature)

    def __len__(self):
        return len(self.members)

    def extra_repr(self):
        return f"{len(self.members)} models"


def distillation_loss(student_logits, target, teacher_probs, alpha=ALPHA, temperature=TEMPERATURE):
    """alpha * CE(student, target) + (1 - alpha) * T^2 * KL(teacher_probs || softmax(student / T)).

    student_logits: N x K Tensor; target: class indices (N,) or probabilities (N, K);
    teacher_probs: N x K array of the teacher's probabilities at the same temperature T.
    """
    _check(alpha, temperature)
    teacher_probs = np.asarray(teacher_probs.data if isinstance(teacher_probs, Tensor) else teacher_probs)
    if teacher_probs.shape != student_logits.shape:
        raise ValueError(f"teacher probabilities {teacher_probs.shape} do not match student logits "
                         f"{student_logits.shape}")
    hard = F.cross_entropy(student_logits, target)
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    soft = F.kl_div(log_student, teacher_probs.astype(student_logits.dtype), reduction="batchmean")
    return alpha * hard + ((1 - alpha) * temperature ** 2) * soft


class Distiller:
    """A teacher (one model or several) and the loss settings, for a training loop.

        distiller = Distiller([teacher_a, teacher_b], alpha=0.5, temperature=3)
        loss = distiller.loss(student(x), y, x)
    """

    def __init__(self, teachers, alpha=ALPHA, temperature=TEMPERATURE):
        _check(alpha, temperature)
        self.teachers = list(teachers) if isinstance(teachers, (list, tuple)) else [teachers]
        if not self.teachers:
            raise ValueError("a Distiller needs at least one teacher")
        self.alpha, self.temperature = float(alpha), float(temperature)

    def teacher_probabilities(self, x):
        return ensemble_probabilities(self.teachers, x, self.temperature)

    def loss(self, student_logits, target, x):
        return distillation_loss(student_logits, target, self.teacher_probabilities(x),
                                 self.alpha, self.temperature)
