package guestfs

import "syscall"

func statMtim(st *syscall.Stat_t) syscall.Timespec { return st.Mtim }
func statCtim(st *syscall.Stat_t) syscall.Timespec { return st.Ctim }
