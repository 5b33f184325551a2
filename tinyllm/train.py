"""Training: the brief's ``Trainer`` — X = batch[:, :-1], Y = batch[:, 1:], next-token
cross-entropy, a progress bar per epoch, a line and a ``./{epoch}.torch`` state dict after each.
"""
import torch
from tqdm import tqdm


class Trainer:
    def __init__(self, model, data_loader, epochs: int = 5, device: str = "cpu", lr: float = 1e-3):
        self.model = model
        self.data_loader = data_loader
        self.epochs = epochs
        self.device = _check_device(device)
        self.lr = lr
        self.losses: list[float] = []   # every step's training loss

    def train(self):
        self.model.to(self.device)
        self.model.train()
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        for epoch in range(self.epochs):
            pbar = tqdm(total=len(self.data_loader))
            for batch in self.data_loader:
                X = batch[:, :-1].to(self.device)   # (B, T)   inputs
                Y = batch[:, 1:].to(self.device)    # (B, T)   next tokens
                loss = self.model.loss(X, Y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                self.losses.append(loss.item())
                pbar.update(1)
                pbar.set_description(f"Loss: {loss.item():.4f}")
            pbar.close()
            tqdm.write(f"Epoch {epoch}: {loss.item()}")
            torch.save(self.model.state_dict(), f"./{epoch + 1}.torch")


def _check_device(device) -> torch.device:
    from .errors import TinyLLMError
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise TinyLLMError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TinyLLMError(f"device {device!r} asked for but CUDA is not available here: use 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise TinyLLMError(f"device {device!r} asked for but MPS is not available here: use 'cpu'")
    return dev
