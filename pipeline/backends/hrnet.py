"""HRNet pose network with MEBOW's human-body-orientation head (Wu et al., CVPR 2020).

Built from the authors' experiment yaml (``experiments/coco/segm-4_lr1e-3.yaml``: HRNet-W32,
input 192x256) with module names identical to their ``lib/models/pose_hrnet.py``, so their
``model_hboe.pth`` (a plain state dict) loads with strict key checking. ``forward`` returns the 17
keypoint heatmaps and the 72-bin orientation distribution (softmax, bin ``i`` = ``5*i`` degrees).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_MOMENTUM = 0.1
N_BINS = 72


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


class HighResolutionModule(nn.Module):
    def __init__(self, num_branches, block, num_blocks, num_inchannels, num_channels,
                 multi_scale_output=True):
        super().__init__()
        if not (num_branches == len(num_blocks) == len(num_channels) == len(num_inchannels)):
            raise ValueError(f"NUM_BRANCHES={num_branches} does not match NUM_BLOCKS/NUM_CHANNELS")
        self.num_inchannels = list(num_inchannels)
        self.num_branches = num_branches
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            [self._make_one_branch(i, block, num_blocks, num_channels) for i in range(num_branches)])
        self.fuse_layers = self._make_fuse_layers()
        self.relu = nn.ReLU(True)

    def _make_one_branch(self, i, block, num_blocks, num_channels, stride=1):
        downsample = None
        if stride != 1 or self.num_inchannels[i] != num_channels[i] * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.num_inchannels[i], num_channels[i] * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(num_channels[i] * block.expansion, momentum=BN_MOMENTUM),
            )
        layers = [block(self.num_inchannels[i], num_channels[i], stride, downsample)]
        self.num_inchannels[i] = num_channels[i] * block.expansion
        layers += [block(self.num_inchannels[i], num_channels[i]) for _ in range(1, num_blocks[i])]
        return nn.Sequential(*layers)

    def _make_fuse_layers(self):
        if self.num_branches == 1:
            return None
        nb, nin = self.num_branches, self.num_inchannels
        fuse_layers = []
        for i in range(nb if self.multi_scale_output else 1):
            row = []
            for j in range(nb):
                if j > i:
                    row.append(nn.Sequential(
                        nn.Conv2d(nin[j], nin[i], 1, 1, 0, bias=False), nn.BatchNorm2d(nin[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:
                    convs = []
                    for k in range(i - j):
                        if k == i - j - 1:
                            convs.append(nn.Sequential(
                                nn.Conv2d(nin[j], nin[i], 3, 2, 1, bias=False), nn.BatchNorm2d(nin[i])))
                        else:
                            convs.append(nn.Sequential(
                                nn.Conv2d(nin[j], nin[j], 3, 2, 1, bias=False), nn.BatchNorm2d(nin[j]),
                                nn.ReLU(True)))
                    row.append(nn.Sequential(*convs))
            fuse_layers.append(nn.ModuleList(row))
        return nn.ModuleList(fuse_layers)

    def forward(self, x):
        if self.num_branches == 1:
            return [self.branches[0](x[0])]
        x = [self.branches[i](x[i]) for i in range(self.num_branches)]
        out = []
        for i in range(len(self.fuse_layers)):
            y = x[0] if i == 0 else self.fuse_layers[i][0](x[0])
            for j in range(1, self.num_branches):
                y = y + (x[j] if i == j else self.fuse_layers[i][j](x[j]))
            out.append(self.relu(y))
        return out


@dataclass(frozen=True)
class HRNetConfig:
    """The parts of the authors' yacs config the network needs."""

    stages: tuple[Mapping[str, Any], ...]  # STAGE2, STAGE3, STAGE4
    num_joints: int = 17
    final_conv_kernel: int = 1
    use_featuremap: bool = True
    image_size: tuple[int, int] = (192, 256)  # width, height

    @classmethod
    def from_yaml_dict(cls, cfg: Mapping[str, Any]) -> "HRNetConfig":
        model = cfg["MODEL"]
        extra = model["EXTRA"]
        stages = tuple(dict(extra[f"STAGE{i}"]) for i in (2, 3, 4))
        for s in stages:
            for key in ("NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS"):
                if key not in s:
                    raise KeyError(f"MODEL.EXTRA stage lacks {key}")
            if s["BLOCK"] not in BLOCKS:
                raise KeyError(f"unknown BLOCK {s['BLOCK']!r}")
        size = model.get("IMAGE_SIZE", [192, 256])
        return cls(stages=stages, num_joints=int(model.get("NUM_JOINTS", 17)),
                   final_conv_kernel=int(extra.get("FINAL_CONV_KERNEL", 1)),
                   use_featuremap=bool(model.get("USE_FEATUREMAP", True)),
                   image_size=(int(size[0]), int(size[1])))


class PoseHighResolutionNet(nn.Module):
    def __init__(self, cfg: HRNetConfig):
        super().__init__()
        self.inplanes = 64
        self.use_featuremap = cfg.use_featuremap
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(Bottleneck, 64, 4)

        pre = [256]
        self.stage_cfgs = cfg.stages
        branch0 = []
        for n, scfg in enumerate(cfg.stages, start=1):
            block = BLOCKS[scfg["BLOCK"]]
            chans = [c * block.expansion for c in scfg["NUM_CHANNELS"]]
            setattr(self, f"transition{n}", self._make_transition_layer(pre, chans))
            stage, pre = self._make_stage(scfg, chans, multi_scale_output=n < len(cfg.stages))
            setattr(self, f"stage{n + 1}", stage)
            branch0.append(pre[0])
        self.final_layer = nn.Conv2d(pre[0], cfg.num_joints, kernel_size=cfg.final_conv_kernel,
                                     stride=1, padding=1 if cfg.final_conv_kernel == 3 else 0)
        # Orientation head on the concatenated branch-0 maps of stages 2-4 (96 ch for W32).
        self.inplanes = sum(branch0) if self.use_featuremap else cfg.num_joints
        self.hoe_layer2 = self._make_layer(BasicBlock, 128, 2, stride=2)
        self.hoe_layer3 = self._make_layer(BasicBlock, 256, 2, stride=2)
        self.hoe_layer4 = self._make_layer(BasicBlock, 512, 2, stride=2)
        self.hoe_avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.hoe_fc = nn.Linear(512, N_BINS)

    def _make_transition_layer(self, pre, cur):
        layers = []
        for i in range(len(cur)):
            if i < len(pre):
                if cur[i] != pre[i]:
                    layers.append(nn.Sequential(nn.Conv2d(pre[i], cur[i], 3, 1, 1, bias=False),
                                                nn.BatchNorm2d(cur[i]), nn.ReLU(inplace=True)))
                else:
                    layers.append(None)
            else:
                convs = []
                for j in range(i + 1 - len(pre)):
                    cin = pre[-1]
                    cout = cur[i] if j == i - len(pre) else cin
                    convs.append(nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False),
                                               nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
                layers.append(nn.Sequential(*convs))
        return nn.ModuleList(layers)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _make_stage(self, scfg, num_inchannels, multi_scale_output=True):
        modules = []
        block = BLOCKS[scfg["BLOCK"]]
        for i in range(scfg["NUM_MODULES"]):
            last = not multi_scale_output and i == scfg["NUM_MODULES"] - 1
            modules.append(HighResolutionModule(scfg["NUM_BRANCHES"], block, scfg["NUM_BLOCKS"],
                                                num_inchannels, scfg["NUM_CHANNELS"],
                                                multi_scale_output=not last))
            num_inchannels = modules[-1].num_inchannels
        return nn.Sequential(*modules), num_inchannels

    def forward(self, x):
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        y_list = [self.layer1(x)]
        maps = []
        for n, scfg in enumerate(self.stage_cfgs, start=1):
            trans = getattr(self, f"transition{n}")
            x_list = []
            for i in range(scfg["NUM_BRANCHES"]):
                if trans[i] is not None:
                    x_list.append(trans[i](y_list[-1]))
                else:
                    x_list.append(y_list[i])
            y_list = getattr(self, f"stage{n + 1}")(x_list)
            maps.append(y_list[0])
        heatmaps = self.final_layer(y_list[0])
        y = torch.cat(maps, 1) if self.use_featuremap else heatmaps
        y = self.hoe_layer4(self.hoe_layer3(self.hoe_layer2(y)))
        y = self.hoe_fc(torch.flatten(self.hoe_avgpool(y), 1))
        return heatmaps, F.softmax(y, dim=1)
