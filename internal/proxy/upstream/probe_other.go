//go:build !unix

package upstream

import "time"

// alive cannot peek without blocking here: an idle connection the app
// closed is found by the exchange, which retries when that is safe.
func (c *conn) alive(time.Duration) bool { return c.br.Buffered() == 0 }

func (c *conn) peekFD(uintptr) bool { return true }
