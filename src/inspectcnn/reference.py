"""Published ELPV results to put beside ours, with the task each one solved (copied from the
project's shared reference notes, ELPV.md; [R] = read in the source, [M] = recalled only)."""

ELPV_TASK = (
    "Ours: binary, defective when the experts' defect probability >= 0.5 (821 of 2,624 cells, 31.3 %), "
    "stratified 70/15/15 train/val/test split on label and mono/poly type, threshold chosen on validation."
)

PUBLISHED = (
    {"source": "Deitsch et al. 2019, Solar Energy 185", "task": "4 defect-probability levels",
     "split": "75/25 stratified", "model": "VGG-19 ImageNet, fine-tuned, 300 px", "result": "accuracy 88.42 % [R]"},
    {"source": "Deitsch et al. 2019", "task": "4 levels", "split": "75/25 stratified",
     "model": "SVM on hand-crafted features", "result": "accuracy 82.44 % [R]"},
    {"source": "Lumi-T model card (SwinV2-based)", "task": "binary defective/functional", "split": "not stated",
     "model": "transformer", "result": "accuracy 91.7 %, precision 0.928, recall 0.885 [R]"},
    {"source": "same card, baselines", "task": "binary", "split": "not stated", "model": "VGG-19 / ResNet-50",
     "result": "F1 0.789 / 0.805 [R]"},
    {"source": "Hindawi CIN 2023", "task": "4 levels", "split": "not read", "model": "light CNN",
     "result": "accuracy 83.5 % [R]"},
    {"source": "PMC12391306", "task": "4 levels", "split": "not read", "model": "ResNet-152 + GAN oversampling",
     "result": "accuracy 90.13 % [R]"},
    {"source": "Demirci et al. 2021, ESWA 175", "task": "2 and 4 classes", "split": "?",
     "model": "deep features + SVM", "result": "~94.5 % / ~89.6 % [M]"},
)
