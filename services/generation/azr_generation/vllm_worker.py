"""Runs inside vLLM's worker processes (`worker_extension_cls`): in-place weight reload.

vLLM's own `reload_weights` reloads every tensor, but on CPU a model with tied embeddings
(SmolLM2, small Qwen2.5) keeps computing logits with the old embedding matrix: `lm_head`
holds a pre-packed copy made when the model was first loaded. Re-running its quantization
method's post-load step re-packs it (on GPU this step is harmless), after a reload from disk
and after a broadcast alike.

Importing this module registers azr's gloo weight-transfer engine in the worker's process,
before vLLM builds the engine `weight_transfer_config` names.
"""

from azr_generation.vllm_weight_transfer import register

register()


class WeightReloadExtension:
    def azr_reload_weights(self, weights_path: str) -> None:
        self.reload_weights(weights_path=weights_path)
        self.azr_refresh_lm_head()

    def azr_refresh_lm_head(self) -> None:
        from vllm.config import set_current_vllm_config

        lm_head = getattr(self.model_runner.get_model(), "lm_head", None)
        method = getattr(lm_head, "quant_method", None)
        if method is not None:
            with set_current_vllm_config(self.vllm_config):
                method.process_weights_after_loading(lm_head)
