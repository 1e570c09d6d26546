"""Text in images: PP-OCRv4 mobile (ONNX) shipped in the rapidocr-onnxruntime wheel."""

import numpy as np


class Ocr:
    """Lines of text with confidence and box in an RGB uint8 image."""

    def __init__(self, files, threads: int):
        from rapidocr_onnxruntime import RapidOCR
        self.engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)

    def read(self, image: np.ndarray) -> list[dict]:
        result, _ = self.engine(np.ascontiguousarray(image[..., ::-1]))  # it expects BGR
        return [{"text": text, "score": float(score), "box": np.asarray(box).tolist()}
                for box, text, score in (result or [])]
