"""Losses between a teacher and a student: logits (`distillation_loss=`) and
features (`feature_loss=`), each a `keras.losses.Loss` with a functional twin."""

from keras_distill.losses.attention_transfer import AttentionTransfer
from keras_distill.losses.attention_transfer import attention_map
from keras_distill.losses.attention_transfer import attention_transfer
from keras_distill.losses.base import DistillationLoss
from keras_distill.losses.base import FeatureLoss
from keras_distill.losses.cosine_distance import CosineDistance
from keras_distill.losses.cosine_distance import cosine_distance
from keras_distill.losses.divergences import GeneralizedJSD
from keras_distill.losses.divergences import SoftTargetReverseKL
from keras_distill.losses.divergences import generalized_jsd
from keras_distill.losses.divergences import soft_target_reverse_kl
from keras_distill.losses.fsp import FSPLoss
from keras_distill.losses.fsp import fsp_loss
from keras_distill.losses.fsp import fsp_matrix
from keras_distill.losses.hint import HintLoss
from keras_distill.losses.hint import hint_loss
from keras_distill.losses.logit_matching import LogitMatching
from keras_distill.losses.logit_matching import logit_matching
from keras_distill.losses.lookup import FunctionLoss
from keras_distill.losses.lookup import get
from keras_distill.losses.lookup import get_feature_loss
from keras_distill.losses.relational import RKDAngle
from keras_distill.losses.relational import RKDDistance
from keras_distill.losses.relational import rkd_angle
from keras_distill.losses.relational import rkd_distance
from keras_distill.losses.soft_targets import SoftenedLoss
from keras_distill.losses.soft_targets import SoftTargetCrossEntropy
from keras_distill.losses.soft_targets import SoftTargetKLDivergence
from keras_distill.losses.soft_targets import soft_target_cross_entropy
from keras_distill.losses.soft_targets import soft_target_kl_divergence
from keras_distill.losses.top_k_divergence import TopKKLDivergence
from keras_distill.losses.top_k_divergence import pack_top_k
from keras_distill.losses.top_k_divergence import top_k_kl_divergence
from keras_distill.losses.top_k_divergence import top_k_teacher
