"""Risk agent: position sizing, limits, portfolio VaR/CVaR, entropy and the kill switch."""
