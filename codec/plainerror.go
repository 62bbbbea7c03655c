package codec

import "log/slog"

// PlainErrorMessage is the message that [HidePlainErrors] sends in place of a
// plain error's text.
const PlainErrorMessage = "internal error"

// HidePlainErrors returns a [ServerOptions].PlainError that keeps the text of
// plain errors on the server: it logs the text to logger at level Error, with
// the request's type, and sends [PlainErrorMessage] instead. A nil logger
// means [slog.Default]. Errors that carry a code ([*Error]) are sent as
// they are: return one for what a client should read.
func HidePlainErrors(logger *slog.Logger) func(typ, text string) string {
	if logger == nil {
		logger = slog.Default()
	}
	return func(typ, text string) string {
		logger.Error("codec: a method failed; its client got "+`"`+PlainErrorMessage+`"`, "type", typ, "error", text)
		return PlainErrorMessage
	}
}
