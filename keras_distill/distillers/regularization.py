"""The student's own regularization losses, without the teacher's."""

from keras import ops

from keras_distill.distillers import replicas


def regularization_loss(losses, teacher_losses):
    """The sum of `losses` that are not `teacher_losses`, in float32.

    Losses are told apart by identity: a teacher with an activity
    regularizer adds losses when it runs, and they must not train the
    student. Scaled for `tf.distribute` like the Keras losses.
    """
    own = [
        ops.cast(ops.sum(loss), "float32")
        for loss in losses
        if not any(loss is other for other in teacher_losses)
    ]
    if not own:
        return ops.zeros((), dtype="float32")
    return replicas.scale(ops.sum(ops.stack(own)))
