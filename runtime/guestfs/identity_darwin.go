package guestfs

import "syscall"

func statMtim(st *syscall.Stat_t) syscall.Timespec { return st.Mtimespec }
func statCtim(st *syscall.Stat_t) syscall.Timespec { return st.Ctimespec }
