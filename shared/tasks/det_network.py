"""MONAI RetinaNet detector on a small MONAI ResNet + feature pyramid, no pretrained weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.apps.detection.networks import retinanet_detector
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from monai.apps.detection.networks.retinanet_network import RetinaNet
from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape
from monai.networks.blocks.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
from monai.networks.nets import resnet
from monai.utils import optional_import
from torch import nn

from shared.tasks.detection_options import DetOptions

__all__ = ["RETURNED_LAYERS", "ResNetFPN", "build_detector", "sliding_roi"]

#: ResNet stages whose outputs feed the pyramid (plus one max-pooled level above them).
RETURNED_LAYERS = (1, 2)
#: Anchor shapes in voxels at the finest level; each further level doubles them.
BASE_ANCHORS = {3: ((4, 4, 3), (8, 8, 5)), 2: ((4, 4), (8, 8))}
FEATURE_MAP_SCALES = (1, 2, 4)
#: First-convolution stride: in-plane only in 3D, where CT slices are thicker than pixels.
STEM_STRIDE = {3: (2, 2, 1), 2: (2, 2)}
#: Volumes larger than this on any axis are scored by MONAI's sliding window.
_ROI = {3: (128, 128, 64), 2: (256, 256)}

_, _HAS_TORCHVISION = optional_import("torchvision")
if not _HAS_TORCHVISION:
    # MONAI's detector checks `isinstance(matcher, torchvision Matcher)` (and the sampler
    # likewise) before its own ATSS matcher and hard-negative sampler, which are what
    # MedFleet uses; without torchvision that check raises instead of being False.
    class _Absent:  # nothing is an instance of it
        pass

    retinanet_detector.Matcher = _Absent  # type: ignore[attr-defined]
    retinanet_detector.BalancedPositiveNegativeSampler = _Absent  # type: ignore[attr-defined]


class ResNetFPN(nn.Module):
    """A MONAI ResNet's stem and first stages under MONAI's feature pyramid network.

    What `monai.apps.detection.networks.retinanet_network.resnet_fpn_feature_extractor`
    builds, with the pyramid width as a parameter (it fixes 256 channels, too heavy for a
    CPU site) and without torchvision's layer getter; unused stages are not kept.
    """

    def __init__(self, spatial_dims: int, width: int, out_channels: int) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(4)]
        backbone = resnet.ResNet(
            block="basic",
            layers=[1, 1, 1, 1],
            block_inplanes=widths,
            spatial_dims=spatial_dims,
            n_input_channels=1,
            conv1_t_size=(7, 7, 3)[:spatial_dims],  # type: ignore[arg-type]  # one per axis
            conv1_t_stride=STEM_STRIDE[spatial_dims],  # type: ignore[arg-type]
        )
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.act, backbone.maxpool)
        self.stages = nn.ModuleList(
            [getattr(backbone, f"layer{i}") for i in range(1, max(RETURNED_LAYERS) + 1)]
        )
        self.fpn = FeaturePyramidNetwork(
            spatial_dims,
            [widths[i - 1] for i in RETURNED_LAYERS],
            out_channels,
            LastLevelMaxPool(spatial_dims),
        )
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(images)
        features: dict[str, torch.Tensor] = {}
        for index, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if index in RETURNED_LAYERS:
                features[str(index)] = x
        return self.fpn(features)  # type: ignore[no-any-return]


def sliding_roi(spatial_dims: int) -> tuple[int, ...]:
    """The sliding-window size that inputs larger than it are scored with."""
    return _ROI[spatial_dims]


def build_detector(options: DetOptions, seed: int) -> RetinaNetDetector:
    """MONAI's RetinaNetDetector: one class (nodule), ATSS matching, hard-negative sampling.

    Only ``network`` holds weights (one state dict, ``network.*``); the anchor generator,
    box coder, matcher, sampler and box selector are settings, rebuilt the same here.
    """
    torch.manual_seed(seed)
    dims = options.spatial_dims
    anchors = AnchorGeneratorWithAnchorShape(
        feature_map_scales=FEATURE_MAP_SCALES, base_anchor_shapes=BASE_ANCHORS[dims]
    )
    divisible: Sequence[int] = [s * 2 * 2 ** max(RETURNED_LAYERS) for s in STEM_STRIDE[dims]]
    network = RetinaNet(
        spatial_dims=dims,
        num_classes=1,
        num_anchors=anchors.num_anchors_per_location()[0],
        feature_extractor=ResNetFPN(dims, options.width, options.fpn_channels),
        size_divisible=divisible,
    )
    detector = RetinaNetDetector(network, anchors)
    detector.set_atss_matcher(num_candidates=4, center_in_gt=False)
    detector.set_hard_negative_sampler(
        batch_size_per_image=64, positive_fraction=0.3, pool_size=20, min_neg=16
    )
    detector.set_target_keys(box_key="boxes", label_key="labels")
    detector.set_box_selector_parameters(
        score_thresh=options.score_threshold,
        topk_candidates_per_level=1000,
        nms_thresh=options.nms_iou,
        detections_per_img=100,
    )
    detector.set_sliding_window_inferer(
        roi_size=sliding_roi(dims), overlap=0.25, sw_batch_size=1, mode="constant"
    )
    return detector
