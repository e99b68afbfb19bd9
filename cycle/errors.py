"""The one error tree of fluxtrade.

Every failure the desk can meet is one of these, so policy is decided by type, not by message::

    FluxtradeError
    ├── TemporaryError            retry with backoff; the coordinator degrades the step
    │   ├── NetworkError          connection refused, reset, DNS
    │   ├── RateLimitError        the broker asked us to slow down
    │   ├── BrokerUnavailableError  maintenance, 5xx, exchange not available
    │   └── BrokerTimeoutError    no answer in time; the outcome of a write is UNKNOWN
    └── OperationalError          stop and tell a human; the coordinator halts new orders
        ├── ConfigError           bad configuration or user input
        ├── AuthenticationError   bad or missing credentials, permission denied
        ├── InsufficientFundsError
        ├── InvalidOrderError     rejected by the broker's rules (size, price, symbol)
        ├── RestrictedSymbolError KYC / jurisdiction restriction on a symbol
        ├── DataValidationError   a bar or feed failed validation
        ├── APIChangedError       a response's shape or version differs from what we expect
        └── StrategyError         user strategy code raised; a safe default was used

Vendor exceptions (ccxt, Ray) are translated at the boundary into the most specific type,
``raise ... from e``, so the original stays in ``__cause__``.
"""


class FluxtradeError(Exception):
    """Root of every error fluxtrade raises on purpose."""

    temporary: bool = False


class TemporaryError(FluxtradeError):
    """A failure that may go away on its own; safe to retry reads, and writes after a lookup."""

    temporary = True


class NetworkError(TemporaryError):
    """The connection failed before an answer came."""


class RateLimitError(TemporaryError):
    """The broker refused the request because we are over its rate limit."""


class BrokerUnavailableError(TemporaryError):
    """The broker is down, in maintenance, or answered with a server error."""


class BrokerTimeoutError(TemporaryError):
    """No answer in time: for a write, the outcome is unknown until looked up."""


class OperationalError(FluxtradeError):
    """A failure that retrying will not fix; a human must look."""


class ConfigError(OperationalError):
    """Bad configuration or user input; names the field and the problem."""


class AuthenticationError(OperationalError):
    """Credentials are missing, wrong or lack a permission."""


class InsufficientFundsError(OperationalError):
    """The account cannot pay for the order."""


class InvalidOrderError(OperationalError):
    """The broker's rules reject the order (size, price, type, symbol)."""


class RestrictedSymbolError(InvalidOrderError):
    """The account may not trade this symbol (KYC or jurisdiction)."""


class DataValidationError(OperationalError):
    """Market data failed validation; carries the symbol and the reason."""

    def __init__(self, symbol: str, reason: str) -> None:
        super().__init__(f"{symbol}: {reason}")
        self.symbol = symbol
        self.reason = reason


class APIChangedError(OperationalError):
    """A broker response no longer has the shape or version the adapter expects."""


class StrategyError(OperationalError):
    """User strategy code failed; the wrapper logged it and used a safe default."""
