"""The ``fna-resnet`` search space: FNA's search (DESIGN §1.3) on ResNet-18 and ResNet-50.

Every block of the four stages is searched, at ResNet-50's depths (3, 4, 6, 3): ResNet-50 keeps its
depth and ResNet-18 (2, 2, 2, 2) grows to ResNet-34's, Eq. 1 copying each stage's last block. A
layer's candidates are the 3×3 and 5×5 spatial convs at half and full inner width (``e0.5``,
``e1``), the 2× wider 3×3 block (``k3_e2``: ``wide_resnet50_2``'s on ResNet-50; remapped from the
base by Net2Net, so it starts computing what the base block did), and ``skip`` where the block
keeps its shape. ``k5_e2`` is left out: it is 5.6× the base block's MAdds on ResNet-18. ``k3_e1``
is the base block, so the base network is a path of the super network (ResNet-18's with ``skip``
on its extra layers). The space is the same for both bases because ``E`` is relative to the plain
ResNet block (:mod:`netadapt_resnet.network`).
"""

from netadapt.search.space import SearchSpace

FNA_RESNET = SearchSpace(
    name="fna-resnet",
    depths=(3, 4, 6, 3),
    candidates=("k3_e0.5", "k3_e1", "k3_e2", "k5_e0.5", "k5_e1"),
    skip=True,
    searched_stages=(1, 2, 3, 4),
)
