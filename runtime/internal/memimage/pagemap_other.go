//go:build !linux

package memimage

// A PageMap tells which pages of a mapping were written; there is none outside Linux.
type PageMap struct{}

// pageMapBufs is what a restore reuses from one to the next; nothing outside Linux.
type pageMapBufs struct{}

// OpenPageMap returns nil: restores copy the whole Image.
func OpenPageMap() *PageMap { return nil }

// Close does nothing.
func (p *PageMap) Close() error { return nil }
