/* ns-run: the step runner of the live-bootstrap chain.
 *
 * Builds one step of the chain inside the Nix sandbox the way live-bootstrap's bwrap mode runs
 * it: the outputs of all earlier steps are stacked with overlayfs (not copied) in a nested user +
 * mount namespace, /dev, /proc and /tmp are provided as bwrap provides them (/sys as an empty
 * read-only tmpfs: the sandbox has none), the step's distfiles appear in /external/distfiles, and
 * the command runs chrooted with the environment the previous step left. Afterwards the overlay's upper directory *is* the step's output: whiteouts are turned
 * into an explicit deletion record (the Nix store cannot hold device files), and the pins
 * (installed-file checksums, package tarball hashes) are checked.
 *
 * Written in the C subset that M2-Planet compiles, so that the chain builds it with
 * M2-Mesoplanet right after stage0 (no host binary enters any step); the tests build the same
 * source with the host compiler. M2-Planet notes: && and || do not short-circuit (they are
 * bitwise on 0/1 values), there is no ternary operator, locals are declared at the top.
 *
 * Modes:
 *   ns-run step            builder of a step derivation; reads the spec named by $specPath
 *   ns-run dump-env FILE   write the environment it was started with to FILE (NUL-separated)
 *   ns-run check-setuid    builder of the check that setuid bits can be set (filter-syscalls)
 *   ns-run probe DIR       check user namespaces + overlayfs (+ setuid bits) in DIR, explain
 *                          what is missing
 *   ns-run sha256 FILE...  print sha256 of files (for tests)
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

/* The host compiler also needs errno.h, sched.h, sys/mount.h, sys/syscall.h, sys/wait.h:
 * build with `gcc -include host.h` (M2-Mesoplanet would try to read them even under #ifndef). */

#define NS_CLONE_NEWNS 0x00020000
#define NS_CLONE_NEWUSER 0x10000000
#define NS_MS_RDONLY 1
#define NS_MS_NOSUID 2
#define NS_MS_NODEV 4
#define NS_MS_REMOUNT 32
#define NS_MS_BIND 4096
#define NS_MS_REC 16384
#define NS_MS_PRIVATE 262144
#define NS_MNT_DETACH 2
#define NS_O_RDONLY 0
#define NS_O_WRONLY 1
#define NS_O_CREAT 64
#define NS_O_TRUNC 512
#define NS_O_DIRECTORY 65536
#define NS_S_IFMT 61440
#define NS_S_IFDIR 16384
#define NS_S_IFREG 32768
#define NS_S_IFLNK 40960
#define NS_S_IFCHR 8192
#define NS_DT_DIR 4
#define NS_DT_UNKNOWN 0
#define BUFSZ 65536
#define MAXLAYERS 1000

/* ------------------------------------------------------------------------------------------
 * System calls: every wrapper returns the kernel's -errno on failure, on both compilers.
 * ------------------------------------------------------------------------------------------ */

#ifdef __M2__
int ns_lstat64(char* path, char* buf)
{
	asm("lea_ebx,[esp+DWORD] %8"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %4"
	    "mov_ecx,[ecx]"
	    "mov_eax, %196"
	    "int !0x80");
}

int ns_getdents64(int fd, char* buf, int size)
{
	asm("lea_ebx,[esp+DWORD] %12"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %8"
	    "mov_ecx,[ecx]"
	    "lea_edx,[esp+DWORD] %4"
	    "mov_edx,[edx]"
	    "mov_eax, %220"
	    "int !0x80");
}

int ns_umount2(char* path, int flags)
{
	asm("lea_ebx,[esp+DWORD] %8"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %4"
	    "mov_ecx,[ecx]"
	    "mov_eax, %52"
	    "int !0x80");
}

int ns_rmdir(char* path)
{
	asm("lea_ebx,[esp+DWORD] %4"
	    "mov_ebx,[ebx]"
	    "mov_eax, %40"
	    "int !0x80");
}

int ns_readlink(char* path, char* buf, int size)
{
	asm("lea_ebx,[esp+DWORD] %12"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %8"
	    "mov_ecx,[ecx]"
	    "lea_edx,[esp+DWORD] %4"
	    "mov_edx,[edx]"
	    "mov_eax, %85"
	    "int !0x80");
}

int ns_lsetxattr(char* path, char* name, char* value, int size, int flags)
{
	asm("push_esi"
	    "lea_ebx,[esp+DWORD] %24"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %20"
	    "mov_ecx,[ecx]"
	    "lea_edx,[esp+DWORD] %16"
	    "mov_edx,[edx]"
	    "lea_esi,[esp+DWORD] %12"
	    "mov_esi,[esi]"
	    "lea_edi,[esp+DWORD] %8"
	    "mov_edi,[edi]"
	    "mov_eax, %227"
	    "int !0x80"
	    "pop_esi");
}

int ns_lgetxattr(char* path, char* name, char* value, int size)
{
	asm("push_esi"
	    "lea_ebx,[esp+DWORD] %20"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %16"
	    "mov_ecx,[ecx]"
	    "lea_edx,[esp+DWORD] %12"
	    "mov_edx,[edx]"
	    "lea_esi,[esp+DWORD] %8"
	    "mov_esi,[esi]"
	    "mov_eax, %229"
	    "int !0x80"
	    "pop_esi");
}

int ns_clock_gettime(int clock, int* ts)
{
	asm("lea_ebx,[esp+DWORD] %8"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %4"
	    "mov_ecx,[ecx]"
	    "mov_eax, %265"
	    "int !0x80");
}

/* utimensat(dirfd, path, times, flags); times: two i386 (32-bit) timespecs */
int ns_utimensat(int dirfd, char* path, int* times, int flags)
{
	asm("push_esi"
	    "lea_ebx,[esp+DWORD] %20"
	    "mov_ebx,[ebx]"
	    "lea_ecx,[esp+DWORD] %16"
	    "mov_ecx,[ecx]"
	    "lea_edx,[esp+DWORD] %12"
	    "mov_edx,[edx]"
	    "lea_esi,[esp+DWORD] %8"
	    "mov_esi,[esi]"
	    "mov_eax, %320"
	    "int !0x80"
	    "pop_esi");
}

int ns_getuid()
{
	asm("mov_eax, %199"
	    "int !0x80");
}

int ns_getgid()
{
	asm("mov_eax, %200"
	    "int !0x80");
}

int ns_open(char* path, int flags, int mode) { return _open(path, flags, mode); }
int ns_mkdir(char* path, int mode) { return mkdir(path, mode); }
int ns_mknod(char* path, int mode, int dev) { return mknod(path, mode, dev); }
int ns_chmod(char* path, int mode) { return chmod(path, mode); }
int ns_unlink(char* path) { return unlink(path); }
int ns_symlink(char* target, char* path) { return symlink(target, path); }
int ns_chdir(char* path) { return chdir(path); }
int ns_chroot(char* path) { return chroot(path); }
int ns_unshare(int flags) { return unshare(flags); }
int ns_mount(char* src, char* dst, char* type, int flags, char* data) { return mount(src, dst, type, flags, data); }
int ns_fork() { return fork(); }
int ns_waitpid(int pid, int* status) { return waitpid(pid, status, 0); }
int ns_execve(char* path, char** argv, char** envp) { return execve(path, argv, envp); }
int ns_read(int fd, char* buf, int n) { return read(fd, buf, n); }
int ns_write(int fd, char* buf, int n) { return write(fd, buf, n); }
int ns_close(int fd) { return close(fd); }

/* copy_file_range(in, NULL, out, NULL, len, 0): six arguments, the sixth in ebp */
int ns_copy_file_range(int in, int out, int len)
{
	asm("push_esi"
	    "push_edi"
	    "push_ebp"
	    "lea_ebx,[esp+DWORD] %24"
	    "mov_ebx,[ebx]"
	    "xor_ecx,ecx"
	    "lea_edx,[esp+DWORD] %20"
	    "mov_edx,[edx]"
	    "xor_esi,esi"
	    "xor_edi,edi"
	    "mov_ebp,edi"
	    "lea_edi,[esp+DWORD] %16"
	    "mov_edi,[edi]"
	    "mov_eax, %377"
	    "int !0x80"
	    "pop_ebp"
	    "pop_edi"
	    "pop_esi");
}
#else
int ns_ret(long r)
{
	if (r < 0) return -errno;
	return r;
}
int ns_lstat64(char* path, char* buf) { return ns_ret(lstat(path, (struct stat*) buf)); }
int ns_getdents64(int fd, char* buf, int size) { return ns_ret(syscall(SYS_getdents64, fd, buf, size)); }
int ns_umount2(char* path, int flags) { return ns_ret(umount2(path, flags)); }
int ns_rmdir(char* path) { return ns_ret(rmdir(path)); }
int ns_readlink(char* path, char* buf, int size) { return ns_ret(readlink(path, buf, size)); }
int ns_lsetxattr(char* path, char* name, char* value, int size, int flags) { return ns_ret(syscall(SYS_lsetxattr, path, name, value, size, flags)); }
int ns_lgetxattr(char* path, char* name, char* value, int size) { return ns_ret(syscall(SYS_lgetxattr, path, name, value, size)); }
int ns_clock_gettime(int clock, int* ts)
{
	struct timespec t;
	int r = clock_gettime(clock, &t);
	ts[0] = t.tv_sec;
	ts[1] = t.tv_nsec;
	return r;
}
int ns_utimensat(int dirfd, char* path, int* times, int flags)
{
	struct timespec ts[2];
	ts[0].tv_sec = times[0];
	ts[0].tv_nsec = times[1];
	ts[1].tv_sec = times[2];
	ts[1].tv_nsec = times[3];
	return ns_ret(syscall(SYS_utimensat, dirfd, path, ts, flags));
}
int ns_getuid() { return getuid(); }
int ns_getgid() { return getgid(); }
int ns_open(char* path, int flags, int mode) { return ns_ret(open(path, flags, mode)); }
int ns_mkdir(char* path, int mode) { return ns_ret(mkdir(path, mode)); }
int ns_mknod(char* path, int mode, int dev) { return ns_ret(mknod(path, mode, dev)); }
int ns_chmod(char* path, int mode) { return ns_ret(chmod(path, mode)); }
int ns_unlink(char* path) { return ns_ret(unlink(path)); }
int ns_symlink(char* target, char* path) { return ns_ret(symlink(target, path)); }
int ns_chdir(char* path) { return ns_ret(chdir(path)); }
int ns_chroot(char* path) { return ns_ret(chroot(path)); }
int ns_unshare(int flags) { return ns_ret(unshare(flags)); }
int ns_mount(char* src, char* dst, char* type, int flags, char* data) { return ns_ret(mount(src, dst, type, flags, data)); }
int ns_fork() { return ns_ret(fork()); }
int ns_waitpid(int pid, int* status) { return ns_ret(waitpid(pid, status, 0)); }
int ns_execve(char* path, char** argv, char** envp) { return ns_ret(execve(path, argv, envp)); }
int ns_read(int fd, char* buf, int n) { return ns_ret(read(fd, buf, n)); }
int ns_write(int fd, char* buf, int n) { return ns_ret(write(fd, buf, n)); }
int ns_close(int fd) { return ns_ret(close(fd)); }
int ns_copy_file_range(int in, int out, int len) { return ns_ret(syscall(SYS_copy_file_range, in, NULL, out, NULL, len, 0)); }
#endif

/* The file-type and mode bits of a path (not following symlinks), or -errno. Uses the layout of
 * the kernel's struct stat64 on i386 for M2 (st_mode at 16, st_rdev at 32) and libc's otherwise. */
char* stat_buf;

int path_mode(char* path)
{
	int r = ns_lstat64(path, stat_buf);
#ifdef __M2__
	int* p;
	if (r < 0) return r;
	p = stat_buf + 16;
	return p[0];
#else
	struct stat* st;
	if (r < 0) return r;
	st = (struct stat*) stat_buf;
	return st->st_mode;
#endif
}

/* st_rdev of the last path_mode() call. */
int last_rdev()
{
#ifdef __M2__
	int* p;
	p = stat_buf + 32;
	return p[0];
#else
	struct stat* st;
	st = (struct stat*) stat_buf;
	return st->st_rdev;
#endif
}

/* st_size (low and high word), st_ino (low word), st_ctime and its nanoseconds of the last
 * path_mode() call: what capture compares to tell an untouched copy-up from a rewritten one. */
int last_size()
{
#ifdef __M2__
	int* p;
	p = stat_buf + 44;
	return p[0];
#else
	struct stat* st;
	st = (struct stat*) stat_buf;
	return st->st_size & 0x7FFFFFFF;
#endif
}

int last_size_hi()
{
#ifdef __M2__
	int* p;
	p = stat_buf + 48;
	return p[0];
#else
	struct stat* st;
	st = (struct stat*) stat_buf;
	return st->st_size >> 31;
#endif
}

int last_ino()
{
#ifdef __M2__
	int* p;
	p = stat_buf + 88;
	return p[0];
#else
	struct stat* st;
	st = (struct stat*) stat_buf;
	return st->st_ino;
#endif
}

int last_ctime()
{
#ifdef __M2__
	int* p;
	p = stat_buf + 80;
	return p[0];
#else
	struct stat* st;
	st = (struct stat*) stat_buf;
	return st->st_ctim.tv_sec;
#endif
}

int last_ctime_ns()
{
#ifdef __M2__
	int* p;
	p = stat_buf + 84;
	return p[0];
#else
	struct stat* st;
	st = (struct stat*) stat_buf;
	return st->st_ctim.tv_nsec;
#endif
}

/* st_mtime and its nanoseconds of the last path_mode() call (what a copy-up keeps) */
int last_mtime()
{
#ifdef __M2__
	int* p;
	p = stat_buf + 72;
	return p[0];
#else
	struct stat* st;
	st = (struct stat*) stat_buf;
	return st->st_mtim.tv_sec;
#endif
}

int last_mtime_ns()
{
#ifdef __M2__
	int* p;
	p = stat_buf + 76;
	return p[0];
#else
	struct stat* st;
	st = (struct stat*) stat_buf;
	return st->st_mtim.tv_nsec;
#endif
}

char* itoa10(int x)
{
	char* r = calloc(16, 1);
	char* t = calloc(16, 1);
	int i = 0;
	int j = 0;
	int neg = 0;
	if (x < 0) {
		neg = 1;
		x = 0 - x;
	}
	if (x == 0) {
		t[0] = '0';
		i = 1;
	}
	while (x > 0) {
		t[i] = '0' + (x % 10);
		x = x / 10;
		i = i + 1;
	}
	if (neg) {
		r[0] = '-';
		j = 1;
	}
	while (i > 0) {
		i = i - 1;
		r[j] = t[i];
		j = j + 1;
	}
	free(t);
	return r;
}

/* Milliseconds since the first call (CLOCK_MONOTONIC). */
int* clock_start;

int millis()
{
	int* ts = calloc(4, sizeof(int));
	int r;
	ns_clock_gettime(1, ts);
	if (clock_start == NULL) {
		clock_start = ts;
		return 0;
	}
	r = (ts[0] - clock_start[0]) * 1000 + (ts[1] - clock_start[1]) / 1000000;
	free(ts);
	return r;
}

/* ------------------------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------------------------ */

char* step_label;

void out2(char* s)
{
	write(2, s, strlen(s));
}

char* cat2(char* a, char* b);

char* errname(int e)
{
	if (e < 0) e = -e;
	if (e == 1) return "EPERM (operation not permitted)";
	if (e == 2) return "ENOENT (no such file or directory)";
	if (e == 4) return "EINTR (interrupted system call)";
	if (e == 5) return "EIO (input/output error)";
	if (e == 6) return "ENXIO (no such device or address)";
	if (e == 7) return "E2BIG (argument list too long)";
	if (e == 8) return "ENOEXEC (exec format error)";
	if (e == 9) return "EBADF (bad file descriptor)";
	if (e == 10) return "ECHILD (no child processes)";
	if (e == 11) return "EAGAIN (resource temporarily unavailable)";
	if (e == 12) return "ENOMEM (cannot allocate memory)";
	if (e == 13) return "EACCES (permission denied)";
	if (e == 14) return "EFAULT (bad address)";
	if (e == 16) return "EBUSY (device or resource busy)";
	if (e == 17) return "EEXIST (file exists)";
	if (e == 18) return "EXDEV (cross-device link)";
	if (e == 19) return "ENODEV (no such device)";
	if (e == 20) return "ENOTDIR (not a directory)";
	if (e == 21) return "EISDIR (is a directory)";
	if (e == 22) return "EINVAL (invalid argument)";
	if (e == 23) return "ENFILE (too many open files in system)";
	if (e == 24) return "EMFILE (too many open files)";
	if (e == 26) return "ETXTBSY (text file busy)";
	if (e == 27) return "EFBIG (file too large)";
	if (e == 28) return "ENOSPC (no space left on device)";
	if (e == 29) return "ESPIPE (illegal seek)";
	if (e == 30) return "EROFS (read-only file system)";
	if (e == 31) return "EMLINK (too many links)";
	if (e == 32) return "EPIPE (broken pipe)";
	if (e == 36) return "ENAMETOOLONG (file name too long)";
	if (e == 38) return "ENOSYS (function not implemented)";
	if (e == 39) return "ENOTEMPTY (directory not empty)";
	if (e == 40) return "ELOOP (too many levels of symbolic links)";
	if (e == 61) return "ENODATA (no data available)";
	if (e == 75) return "EOVERFLOW (value too large for defined data type)";
	if (e == 95) return "EOPNOTSUPP (operation not supported)";
	if (e == 122) return "EDQUOT (disk quota exceeded)";
	return cat2("errno ", itoa10(e));
}

void fail(char* what, char* path, int err)
{
	out2("ns-run: ");
	if (step_label != NULL) {
		out2(step_label);
		out2(": ");
	}
	out2(what);
	if (path != NULL) {
		out2(" ");
		out2(path);
	}
	if (err != 0) {
		out2(": ");
		out2(errname(err));
	}
	out2("\n");
	exit(1);
}

void check(int r, char* what, char* path)
{
	if (r < 0) fail(what, path, r);
}

/* ------------------------------------------------------------------------------------------
 * Strings and files
 * ------------------------------------------------------------------------------------------ */

char* cat2(char* a, char* b)
{
	char* r = calloc(strlen(a) + strlen(b) + 1, 1);
	strcpy(r, a);
	strcat(r, b);
	return r;
}

char* cat3(char* a, char* b, char* c)
{
	char* r = calloc(strlen(a) + strlen(b) + strlen(c) + 1, 1);
	strcpy(r, a);
	strcat(r, b);
	strcat(r, c);
	return r;
}

char* path_join(char* dir, char* name)
{
	return cat3(dir, "/", name);
}

/* Read a whole file; *len receives its size. Returns NULL if it cannot be opened (the kernel's
 * error is then in read_err). */
int read_err;

char* read_file(char* path, int* len)
{
	int fd = ns_open(path, NS_O_RDONLY, 0);
	int cap = 4096;
	int n = 0;
	int r;
	char* buf;
	char* bigger;
	read_err = 0;
	if (fd < 0) {
		read_err = fd;
		return NULL;
	}
	buf = calloc(cap + 1, 1);
	while (1) {
		if (n == cap) {
			bigger = calloc(cap * 2 + 1, 1);
			memcpy(bigger, buf, n);
			free(buf);
			buf = bigger;
			cap = cap * 2;
		}
		r = ns_read(fd, buf + n, cap - n);
		if (r < 0) fail("cannot read", path, r);
		if (r == 0) break;
		n = n + r;
	}
	ns_close(fd);
	len[0] = n;
	buf[n] = 0;
	return buf;
}

void write_all(int fd, char* buf, int len, char* path)
{
	int r;
	while (len > 0) {
		r = ns_write(fd, buf, len);
		if (r < 0) fail("cannot write", path, r);
		if (r == 0) fail("cannot write (no progress)", path, 0);
		buf = buf + r;
		len = len - r;
	}
}

void write_file(char* path, char* buf, int len, int mode)
{
	int fd = ns_open(path, NS_O_WRONLY | NS_O_CREAT | NS_O_TRUNC, mode);
	if (fd < 0) fail("cannot create", path, fd);
	write_all(fd, buf, len, path);
	check(ns_close(fd), "cannot write", path);
}

/* mkdir -p */
void mkdirs(char* path, int mode)
{
	char* p = calloc(strlen(path) + 1, 1);
	int i = 1;
	int r;
	strcpy(p, path);
	while (p[i] != 0) {
		if (p[i] == '/') {
			p[i] = 0;
			r = ns_mkdir(p, mode);
			if (r < 0) {
				if (r != -17) fail("cannot create directory", p, r);
			}
			p[i] = '/';
		}
		i = i + 1;
	}
	r = ns_mkdir(p, mode);
	if (r < 0) {
		if (r != -17) fail("cannot create directory", p, r);
	}
	free(p);
}

/* ------------------------------------------------------------------------------------------
 * Directory listing: sorted names (deterministic output whatever the file system's order)
 * ------------------------------------------------------------------------------------------ */

struct entry {
	char* name;
	int type; /* d_type */
	struct entry* next;
};

struct entry* insert_sorted(struct entry* head, struct entry* e)
{
	struct entry* cur;
	if (head == NULL) {
		e->next = NULL;
		return e;
	}
	if (strcmp(e->name, head->name) < 0) {
		e->next = head;
		return e;
	}
	cur = head;
	while (cur->next != NULL) {
		if (strcmp(e->name, cur->next->name) < 0) break;
		cur = cur->next;
	}
	e->next = cur->next;
	cur->next = e;
	return head;
}

struct entry* list_dir(char* path)
{
	int fd = ns_open(path, NS_O_RDONLY | NS_O_DIRECTORY, 0);
	char* buf;
	int n;
	int pos;
	int reclen;
	char* name;
	struct entry* head = NULL;
	struct entry* e;
	if (fd < 0) fail("cannot open directory", path, fd);
	buf = calloc(BUFSZ, 1);
	while (1) {
		n = ns_getdents64(fd, buf, BUFSZ);
		if (n < 0) fail("cannot read directory", path, n);
		if (n == 0) break;
		pos = 0;
		while (pos < n) {
			reclen = (buf[pos + 16] & 255) | ((buf[pos + 17] & 255) << 8);
			name = buf + pos + 19;
			if (strcmp(name, ".") != 0) {
				if (strcmp(name, "..") != 0) {
					e = calloc(1, sizeof(struct entry));
					e->name = calloc(strlen(name) + 1, 1);
					strcpy(e->name, name);
					e->type = buf[pos + 18] & 255;
					head = insert_sorted(head, e);
				}
			}
			pos = pos + reclen;
		}
	}
	ns_close(fd);
	free(buf);
	return head;
}

int is_dir_entry(char* path, struct entry* e)
{
	int m;
	if (e->type == NS_DT_DIR) return 1;
	if (e->type != NS_DT_UNKNOWN) return 0;
	m = path_mode(path);
	if (m < 0) return 0;
	return (m & NS_S_IFMT) == NS_S_IFDIR;
}

/* rm -rf (the overlay work directory) */
void remove_tree(char* path)
{
	int m = path_mode(path);
	struct entry* e;
	char* child;
	if (m < 0) return;
	if ((m & NS_S_IFMT) == NS_S_IFDIR) {
		ns_chmod(path, 448);
		e = list_dir(path);
		while (e != NULL) {
			child = path_join(path, e->name);
			remove_tree(child);
			free(child);
			e = e->next;
		}
		check(ns_rmdir(path), "cannot remove", path);
	} else {
		check(ns_unlink(path), "cannot remove", path);
	}
}

/* Copy a regular file through one fixed buffer (never the whole file in memory): `src` is opened
 * before `dst` is unlinked, so dst may be the same path seen through the overlay. */
char* copy_buf;

void copy_file(char* src, char* dst, int mode)
{
	int in = ns_open(src, NS_O_RDONLY, 0);
	int out;
	int r;
	if (in < 0) fail("cannot open", src, in);
	if (copy_buf == NULL) copy_buf = calloc(BUFSZ, 1);
	ns_unlink(dst);
	out = ns_open(dst, NS_O_WRONLY | NS_O_CREAT | NS_O_TRUNC, mode);
	if (out < 0) fail("cannot create", dst, out);
	/* in the kernel when it can (overlay to overlay: the data never passes through here, as
	 * with cp); any error, e.g. EXDEV across file systems, falls back to read/write from where
	 * it stopped (both file offsets have advanced by what was copied) */
	while (1) {
		r = ns_copy_file_range(in, out, 1073741824);
		if (r <= 0) break;
	}
	while (1) {
		r = ns_read(in, copy_buf, BUFSZ);
		if (r < 0) fail("cannot read", src, r);
		if (r == 0) break;
		write_all(out, copy_buf, r, dst);
	}
	ns_close(in);
	check(ns_close(out), "cannot write", dst);
}

/* cp -r for regular files, symlinks and directories (modes: executable bit only, like the
 * Nix store). */
void copy_tree(char* src, char* dst)
{
	int m = path_mode(src);
	int t;
	char* link;
	int r;
	struct entry* e;
	char* s;
	char* d;
	if (m < 0) fail("cannot stat", src, m);
	t = m & NS_S_IFMT;
	if (t == NS_S_IFDIR) {
		r = ns_mkdir(dst, 493);
		if (r < 0) {
			if (r != -17) fail("cannot create directory", dst, r);
		}
		e = list_dir(src);
		while (e != NULL) {
			s = path_join(src, e->name);
			d = path_join(dst, e->name);
			copy_tree(s, d);
			free(s);
			free(d);
			e = e->next;
		}
	} else if (t == NS_S_IFLNK) {
		link = calloc(4097, 1);
		r = ns_readlink(src, link, 4096);
		if (r < 0) fail("cannot read link", src, r);
		ns_unlink(dst);
		check(ns_symlink(link, dst), "cannot create symlink", dst);
		free(link);
	} else if (t == NS_S_IFREG) {
		if ((m & 73) != 0) copy_file(src, dst, 493);
		else copy_file(src, dst, 420);
	}
	/* special files (whiteouts, devices) are never copied */
}

/* ------------------------------------------------------------------------------------------
 * SHA-256
 * ------------------------------------------------------------------------------------------ */

unsigned* sha_k;

unsigned shr(unsigned x, int n)
{
	unsigned one = 1;
	if (n == 0) return x;
	return (x >> n) & ((one << (32 - n)) - one);
}

unsigned rotr(unsigned x, int n)
{
	return shr(x, n) | ((x << (32 - n)) & 0xFFFFFFFF);
}

void sha_init_k()
{
	char* hex = "428a2f98 71374491 b5c0fbcf e9b5dba5 3956c25b 59f111f1 923f82a4 ab1c5ed5 d807aa98 12835b01 243185be 550c7dc3 72be5d74 80deb1fe 9bdc06a7 c19bf174 e49b69c1 efbe4786 0fc19dc6 240ca1cc 2de92c6f 4a7484aa 5cb0a9dc 76f988da 983e5152 a831c66d b00327c8 bf597fc7 c6e00bf3 d5a79147 06ca6351 14292967 27b70a85 2e1b2138 4d2c6dfc 53380d13 650a7354 766a0abb 81c2c92e 92722c85 a2bfe8a1 a81a664b c24b8b70 c76c51a3 d192e819 d6990624 f40e3585 106aa070 19a4c116 1e376c08 2748774c 34b0bcb5 391c0cb3 4ed8aa4a 5b9cca4f 682e6ff3 748f82ee 78a5636f 84c87814 8cc70208 90befffa a4506ceb bef9a3f7 c67178f2";
	int i = 0;
	int j;
	int c;
	unsigned v;
	sha_k = calloc(64, sizeof(unsigned));
	while (i < 64) {
		v = 0;
		j = 0;
		while (j < 8) {
			c = hex[i * 9 + j];
			if (c >= 'a') c = c - 'a' + 10;
			else c = c - '0';
			v = (v << 4) | c;
			j = j + 1;
		}
		sha_k[i] = v;
		i = i + 1;
	}
}

void sha_block(unsigned* h, char* p)
{
	unsigned* w = calloc(64, sizeof(unsigned));
	unsigned a;
	unsigned b;
	unsigned c;
	unsigned d;
	unsigned e;
	unsigned f;
	unsigned g;
	unsigned hh;
	unsigned t1;
	unsigned t2;
	unsigned s0;
	unsigned s1;
	int i = 0;
	while (i < 16) {
		b = p[i * 4] & 255;
		c = p[i * 4 + 1] & 255;
		d = p[i * 4 + 2] & 255;
		e = p[i * 4 + 3] & 255;
		w[i] = (b << 24) | (c << 16) | (d << 8) | e;
		i = i + 1;
	}
	while (i < 64) {
		s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ shr(w[i - 15], 3);
		s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ shr(w[i - 2], 10);
		w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & 0xFFFFFFFF;
		i = i + 1;
	}
	a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
	i = 0;
	while (i < 64) {
		s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
		t1 = (hh + s1 + ((e & f) ^ ((e ^ 0xFFFFFFFF) & g)) + sha_k[i] + w[i]) & 0xFFFFFFFF;
		s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
		t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) & 0xFFFFFFFF;
		hh = g; g = f; f = e;
		e = (d + t1) & 0xFFFFFFFF;
		d = c; c = b; b = a;
		a = (t1 + t2) & 0xFFFFFFFF;
		i = i + 1;
	}
	h[0] = (h[0] + a) & 0xFFFFFFFF;
	h[1] = (h[1] + b) & 0xFFFFFFFF;
	h[2] = (h[2] + c) & 0xFFFFFFFF;
	h[3] = (h[3] + d) & 0xFFFFFFFF;
	h[4] = (h[4] + e) & 0xFFFFFFFF;
	h[5] = (h[5] + f) & 0xFFFFFFFF;
	h[6] = (h[6] + g) & 0xFFFFFFFF;
	h[7] = (h[7] + hh) & 0xFFFFFFFF;
	free(w);
}

/* Hex sha256 of a file, or NULL if it cannot be opened. */
char* sha256_file(char* path)
{
	int fd = ns_open(path, NS_O_RDONLY, 0);
	unsigned* h;
	char* buf;
	char* out;
	char* digits = "0123456789abcdef";
	int fill = 0;
	int total = 0; /* bytes, mod 2^29 is enough for the length low word below */
	int total_hi = 0;
	int i;
	int r;
	unsigned v;
	read_err = fd;
	if (fd < 0) return NULL;
	if (sha_k == NULL) sha_init_k();
	h = calloc(8, sizeof(unsigned));
	h[0] = 0x6a09e667; h[1] = 0xbb67ae85; h[2] = 0x3c6ef372; h[3] = 0xa54ff53a;
	h[4] = 0x510e527f; h[5] = 0x9b05688c; h[6] = 0x1f83d9ab; h[7] = 0x5be0cd19;
	buf = calloc(128, 1);
	while (1) {
		r = ns_read(fd, buf + fill, 64 - fill);
		if (r < 0) fail("cannot read", path, r);
		if (r == 0) break;
		fill = fill + r;
		total = total + r;
		if (total >= 268435456) {
			total = total - 268435456;
			total_hi = total_hi + 1;
		}
		if (fill == 64) {
			sha_block(h, buf);
			fill = 0;
		}
	}
	ns_close(fd);
	/* padding: 0x80, zeros, 64-bit big-endian bit length (total_hi counts 2^28-byte units) */
	buf[fill] = 128;
	fill = fill + 1;
	if (fill > 56) {
		while (fill < 64) {
			buf[fill] = 0;
			fill = fill + 1;
		}
		sha_block(h, buf);
		fill = 0;
	}
	while (fill < 56) {
		buf[fill] = 0;
		fill = fill + 1;
	}
	/* bit length = (total_hi * 2^28 + total) * 8 = total_hi * 2^31 + total * 8 */
	v = shr(total_hi, 1);
	buf[56] = shr(v, 24) & 255;
	buf[57] = shr(v, 16) & 255;
	buf[58] = shr(v, 8) & 255;
	buf[59] = v & 255;
	v = ((total_hi & 1) << 31) | ((total << 3) & 0xFFFFFFFF);
	buf[60] = shr(v, 24) & 255;
	buf[61] = shr(v, 16) & 255;
	buf[62] = shr(v, 8) & 255;
	buf[63] = v & 255;
	sha_block(h, buf);
	out = calloc(65, 1);
	i = 0;
	while (i < 32) {
		v = shr(h[i / 4], 24 - 8 * (i % 4)) & 255;
		out[i * 2] = digits[shr(v, 4)];
		out[i * 2 + 1] = digits[v & 15];
		i = i + 1;
	}
	free(buf);
	free(h);
	return out;
}

/* ------------------------------------------------------------------------------------------
 * The spec: one directive per line, "key value"; '#' starts a comment line.
 *
 * The grammar (spec_arity): every key has a fixed shape, and anything else is refused with the
 * spec line's number, so a misspelt key or a missing argument can never make a step run nothing
 * or check no pin and still succeed.
 *
 *   shape  keys                                                   value
 *   ---    no-command                                             (none)
 *   1      self environ mkdir copyup copyuptree cwd flatten       one word
 *          require (only "require setuid"), layer-output output
 *          scratch passenv (the stdenv bridge's own store paths)
 *   2      layer file put copyin copyupdir distfile checksums     two words
 *          state bind
 *   hex    expect                                                 <64 hex digits> <path>
 *   rest   label arg setenv setuid-steps                          the rest of the line (not
 *                                                                 empty; may hold spaces)
 *
 * label, self, environ, cwd, flatten, no-command, setuid-steps and layer-output may appear once. A spec
 * runs a command (arg lines), flattens (flatten) or says no-command; exactly one of the three.
 * ------------------------------------------------------------------------------------------ */

#define SHAPE_NONE 0
#define SHAPE_WORD 1
#define SHAPE_TWO 2
#define SHAPE_HEX 3
#define SHAPE_REST 4

struct item {
	char* key;
	char* a; /* first word of the value */
	char* b; /* rest after the first word (or NULL) */
	char* value; /* the whole value */
	int line; /* spec line number */
	/* a copied-up file: what capture compares (see copy_up) */
	int ino;
	int ctime;
	int ctime_ns;
	int size;
	int size_hi;
	struct item* next;
};

struct item* spec;

/* The shape of a key's value, or -1 for an unknown key. */
int spec_arity(char* key)
{
	if (strcmp(key, "no-command") == 0) return SHAPE_NONE;
	if (strcmp(key, "self") == 0) return SHAPE_WORD;
	if (strcmp(key, "environ") == 0) return SHAPE_WORD;
	if (strcmp(key, "mkdir") == 0) return SHAPE_WORD;
	if (strcmp(key, "copyup") == 0) return SHAPE_WORD;
	if (strcmp(key, "copyuptree") == 0) return SHAPE_WORD;
	if (strcmp(key, "cwd") == 0) return SHAPE_WORD;
	if (strcmp(key, "flatten") == 0) return SHAPE_WORD;
	if (strcmp(key, "require") == 0) return SHAPE_WORD;
	if (strcmp(key, "layer-output") == 0) return SHAPE_WORD;
	if (strcmp(key, "output") == 0) return SHAPE_WORD;
	if (strcmp(key, "scratch") == 0) return SHAPE_WORD;
	if (strcmp(key, "passenv") == 0) return SHAPE_WORD;
	if (strcmp(key, "layer") == 0) return SHAPE_TWO;
	if (strcmp(key, "file") == 0) return SHAPE_TWO;
	if (strcmp(key, "put") == 0) return SHAPE_TWO;
	if (strcmp(key, "copyin") == 0) return SHAPE_TWO;
	if (strcmp(key, "copyupdir") == 0) return SHAPE_TWO;
	if (strcmp(key, "distfile") == 0) return SHAPE_TWO;
	if (strcmp(key, "checksums") == 0) return SHAPE_TWO;
	if (strcmp(key, "state") == 0) return SHAPE_TWO;
	if (strcmp(key, "bind") == 0) return SHAPE_TWO;
	if (strcmp(key, "expect") == 0) return SHAPE_HEX;
	if (strcmp(key, "label") == 0) return SHAPE_REST;
	if (strcmp(key, "arg") == 0) return SHAPE_REST;
	if (strcmp(key, "setenv") == 0) return SHAPE_REST;
	if (strcmp(key, "setuid-steps") == 0) return SHAPE_REST;
	return -1;
}

int spec_once(char* key)
{
	if (strcmp(key, "label") == 0) return 1;
	if (strcmp(key, "self") == 0) return 1;
	if (strcmp(key, "environ") == 0) return 1;
	if (strcmp(key, "cwd") == 0) return 1;
	if (strcmp(key, "flatten") == 0) return 1;
	if (strcmp(key, "no-command") == 0) return 1;
	if (strcmp(key, "setuid-steps") == 0) return 1;
	if (strcmp(key, "layer-output") == 0) return 1;
	return 0;
}

/* 64 lowercase or uppercase hex digits and nothing else */
int is_hex64(char* s)
{
	int i = 0;
	int c;
	while (s[i] != 0) {
		c = s[i];
		if (i >= 64) return 0;
		if (c >= '0') {
			if (c <= '9') {
				i = i + 1;
				continue;
			}
		}
		if (c >= 'a') {
			if (c <= 'f') {
				i = i + 1;
				continue;
			}
		}
		if (c >= 'A') {
			if (c <= 'F') {
				i = i + 1;
				continue;
			}
		}
		return 0;
	}
	return i == 64;
}

void spec_fail(int n, char* what, char* line)
{
	out2("ns-run: spec line ");
	out2(itoa10(n));
	out2(": ");
	out2(what);
	out2("\n  ");
	out2(line);
	out2("\n");
	exit(1);
}

struct item* parse_spec(char* text)
{
	struct item* head = NULL;
	struct item* tail = NULL;
	struct item* it;
	struct item* seen;
	char* line = text;
	char* orig;
	char* nl;
	char* sp;
	int n = 0;
	int shape;
	int commands = 0;
	int args = 0;
	while (line[0] != 0) {
		n = n + 1;
		nl = strchr(line, '\n');
		if (nl != NULL) nl[0] = 0;
		if (line[0] != 0) {
			if (line[0] != '#') {
				orig = calloc(strlen(line) + 1, 1);
				strcpy(orig, line);
				it = calloc(1, sizeof(struct item));
				it->line = n;
				sp = strchr(line, ' ');
				if (sp == NULL) {
					it->key = line;
					it->value = "";
				} else {
					sp[0] = 0;
					it->key = line;
					it->value = sp + 1;
				}
				it->a = calloc(strlen(it->value) + 1, 1);
				strcpy(it->a, it->value);
				sp = strchr(it->a, ' ');
				if (sp != NULL) {
					sp[0] = 0;
					it->b = sp + 1;
				}
				shape = spec_arity(it->key);
				if (shape < 0) spec_fail(n, cat3("unknown key '", it->key, "'"), orig);
				if (shape == SHAPE_NONE) {
					if (it->value[0] != 0) spec_fail(n, cat3("'", it->key, "' takes no argument"), orig);
				}
				if (shape != SHAPE_NONE) {
					if (it->a[0] == 0) spec_fail(n, cat3("'", it->key, "' is missing its argument"), orig);
				}
				if (shape == SHAPE_WORD) {
					if (it->b != NULL) spec_fail(n, cat3("'", it->key, "' takes one argument, this line has more"), orig);
				}
				if (shape == SHAPE_TWO) {
					if (it->b == NULL) spec_fail(n, cat3("'", it->key, "' takes two arguments, this line has one"), orig);
					if (it->b[0] == 0) spec_fail(n, cat3("'", it->key, "' takes two arguments, the second is empty"), orig);
					if (strchr(it->b, ' ') != NULL) spec_fail(n, cat3("'", it->key, "' takes two arguments, this line has more"), orig);
				}
				if (shape == SHAPE_HEX) {
					if (is_hex64(it->a) == 0) spec_fail(n, "a pin is '<64 hex digits> <path>': the hash is not 64 hex digits", orig);
					if (it->b == NULL) spec_fail(n, "a pin is '<64 hex digits> <path>': the path is missing", orig);
					if (it->b[0] != '/') spec_fail(n, "a pin is '<64 hex digits> <path>': the path is not absolute", orig);
					if (strchr(it->b, ' ') != NULL) spec_fail(n, "a pin is '<64 hex digits> <path>': the path holds a space", orig);
				}
				if (strcmp(it->key, "require") == 0) {
					if (strcmp(it->value, "setuid") != 0) spec_fail(n, "unknown requirement (only 'require setuid')", orig);
				}
				if (strcmp(it->key, "setenv") == 0) {
					if (strchr(it->value, '=') == NULL) spec_fail(n, "'setenv' takes NAME=VALUE", orig);
				}
				if (spec_once(it->key)) {
					seen = head;
					while (seen != NULL) {
						if (strcmp(seen->key, it->key) == 0) {
							spec_fail(n, cat3("'", it->key, cat3("' may appear once; it is already on line ", itoa10(seen->line), "")), orig);
						}
						seen = seen->next;
					}
				}
				if (strcmp(it->key, "arg") == 0) {
					if (args == 0) commands = commands + 1;
					args = args + 1;
				}
				if (strcmp(it->key, "flatten") == 0) commands = commands + 1;
				if (strcmp(it->key, "no-command") == 0) commands = commands + 1;
				if (tail == NULL) head = it;
				else tail->next = it;
				tail = it;
			}
		}
		if (nl == NULL) break;
		line = nl + 1;
	}
	if (commands == 0) {
		out2("ns-run: spec: no command: a step needs 'arg' lines (the command to run), a checkpoint\n"
		     "  'flatten 1', or a spec that only assembles files 'no-command'\n");
		exit(1);
	}
	if (commands > 1) {
		out2("ns-run: spec: 'arg', 'flatten' and 'no-command' exclude each other; this spec has more than one\n");
		exit(1);
	}
	return head;
}

char* spec_get(char* key)
{
	struct item* it = spec;
	while (it != NULL) {
		if (strcmp(it->key, key) == 0) return it->value;
		it = it->next;
	}
	return NULL;
}

/* ------------------------------------------------------------------------------------------
 * Layers: deletion records -> whiteout layers; skeleton of writable directories
 * ------------------------------------------------------------------------------------------ */

/* Undo the escaping of a deletion record path: \n and \\ */
char* unescape(char* s)
{
	char* r = calloc(strlen(s) + 1, 1);
	int i = 0;
	int j = 0;
	while (s[i] != 0) {
		if (s[i] == '\\') {
			if (s[i + 1] == 'n') {
				r[j] = '\n';
				i = i + 2;
				j = j + 1;
				continue;
			}
			if (s[i + 1] == '\\') {
				r[j] = '\\';
				i = i + 2;
				j = j + 1;
				continue;
			}
		}
		r[j] = s[i];
		i = i + 1;
		j = j + 1;
	}
	return r;
}

char* escape(char* s)
{
	char* r = calloc(strlen(s) * 2 + 1, 1);
	int i = 0;
	int j = 0;
	while (s[i] != 0) {
		if (s[i] == '\n') {
			r[j] = '\\';
			r[j + 1] = 'n';
			j = j + 2;
		} else if (s[i] == '\\') {
			r[j] = '\\';
			r[j + 1] = '\\';
			j = j + 2;
		} else {
			r[j] = s[i];
			j = j + 1;
		}
		i = i + 1;
	}
	return r;
}

char* dirname_of(char* path)
{
	char* r = calloc(strlen(path) + 1, 1);
	char* slash;
	strcpy(r, path);
	slash = strrchr(r, '/');
	if (slash != NULL) slash[0] = 0;
	return r;
}

void explain_overlay(int r, char* opts);

/* Turn one deletion record into a whiteout layer directory `dir` (under the current directory).
 * 'D' records become whiteouts (character devices 0/0, which anyone may create). 'O' records
 * become opaque directories: the Nix sandbox's seccomp filter refuses setxattr, so overlayfs
 * itself marks them: over a scratch lower layer holding the directory, the directory is removed
 * and created again, which leaves it opaque in the upper layer (= `dir`).
 * Returns 1 if the layer has entries. */
int make_whiteouts(char* record, char* dir, int n)
{
	int len = 0;
	char* text = read_file(record, &len);
	char* line;
	char* nl;
	char* path;
	char* target;
	int any = 0;
	int opaque = 0;
	int r;
	int pass = 0;
	char* scratch = cat2("o/", itoa10(n));
	char* owork = cat2("ow/", itoa10(n));
	char* omnt = cat2("om/", itoa10(n));
	char* opts;
	if (text == NULL) fail("cannot read deletion record", record, read_err);
	mkdirs(dir, 493);
	/* pass 0: opaque directories (through a scratch overlay); pass 1: whiteouts */
	while (pass < 2) {
		if (pass == 1) {
			if (opaque) {
				opts = cat3("lowerdir=", scratch, ",upperdir=");
				opts = cat3(opts, dir, ",workdir=");
				opts = cat3(opts, owork, ",userxattr");
				mkdirs(owork, 493);
				mkdirs(omnt, 493);
				r = ns_mount("overlay", omnt, "overlay", 0, opts);
				if (r < 0) {
					explain_overlay(r, opts);
					exit(1);
				}
			}
		}
		line = text;
		while (line[0] != 0) {
			nl = strchr(line, '\n');
			if (nl != NULL) nl[0] = 0;
			if (line[0] != 0) {
				if (line[1] != ' ') fail("malformed deletion record line in", record, 0);
				path = unescape(line + 2);
				if (path[0] != '/') fail("deletion record path is not absolute in", record, 0);
				if (line[0] == 'O') {
					if (pass == 0) {
						target = cat2(scratch, path);
						mkdirs(target, 493);
						write_file(path_join(target, "x"), "", 0, 420);
						opaque = 1;
					} else {
						target = cat2(omnt, path);
						check(ns_unlink(path_join(target, "x")), "cannot prepare opaque directory", target);
						check(ns_rmdir(target), "cannot prepare opaque directory", target);
						check(ns_mkdir(target, 493), "cannot create opaque directory", target);
					}
					any = 1;
				}
			}
			if (nl == NULL) break;
			nl[0] = '\n';
			line = nl + 1;
		}
		if (pass == 1) {
			if (opaque) {
				check(ns_umount2(omnt, NS_MNT_DETACH), "cannot unmount", omnt);
				remove_tree(owork);
			}
		}
		pass = pass + 1;
	}
	line = text;
	while (line[0] != 0) {
		nl = strchr(line, '\n');
		if (nl != NULL) nl[0] = 0;
		if (line[0] == 'D') {
			path = unescape(line + 2);
			target = cat2(dir, path);
			mkdirs(dirname_of(target), 493);
			r = ns_mknod(target, NS_S_IFCHR, 0);
			if (r < 0) fail("cannot create a whiteout (overlayfs deletion marker; needs Linux >= 5.8 in a user namespace)", target, r);
			any = 1;
		}
		/* 'X' (a special file that was dropped) needs nothing */
		if (nl == NULL) break;
		line = nl + 1;
	}
	return any;
}

/* The skeleton: every directory of the merged tree, recreated empty and owned by us, in a layer
 * on top. A merged directory takes its owner and mode from the topmost layer holding it, so the
 * step can create, rename and delete entries anywhere, as root could in live-bootstrap. (Store
 * files belong to a user the sandbox does not map, which would otherwise make every directory
 * read-only.) It is built from each layer's own tree, bottom to top, so the cost is one read of
 * each layer's directories (no lookups cascading through the stack): a layer's deletion record
 * first removes what it deleted, then its directories are added, and a non-directory replaces a
 * directory of the same name below it. */
int skeleton_dirs;

void skeleton_layer(char* layer, char* skel, int top)
{
	struct entry* e = list_dir(layer);
	char* s;
	char* d;
	int r;
	int skip;
	while (e != NULL) {
		s = path_join(layer, e->name);
		d = path_join(skel, e->name);
		if (is_dir_entry(s, e)) {
			skip = 0;
			if (top) {
				if (strcmp(e->name, "proc") == 0) skip = 1;
				if (strcmp(e->name, "dev") == 0) skip = 1;
				if (strcmp(e->name, "tmp") == 0) skip = 1;
				if (strcmp(e->name, "sys") == 0) skip = 1;
			}
			r = ns_mkdir(d, 493);
			if (r == 0) skeleton_dirs = skeleton_dirs + 1;
			else if (r != -17) fail("cannot create skeleton directory", d, r);
			if (skip == 0) skeleton_layer(s, d, 0);
		} else {
			if (path_mode(d) >= 0) remove_tree(d);
		}
		free(s);
		free(d);
		e = e->next;
	}
}

void skeleton_deletions(char* record, char* skel)
{
	int len = 0;
	char* text = read_file(record, &len);
	char* line;
	char* nl;
	char* target;
	if (text == NULL) fail("cannot read deletion record", record, read_err);
	line = text;
	while (line[0] != 0) {
		nl = strchr(line, '\n');
		if (nl != NULL) nl[0] = 0;
		if (line[0] == 'D') {
			target = cat2(skel, unescape(line + 2));
			if (path_mode(target) >= 0) remove_tree(target);
		} else if (line[0] == 'O') {
			target = cat2(skel, unescape(line + 2));
			if (path_mode(target) >= 0) remove_tree(target);
		}
		if (nl == NULL) break;
		line = nl + 1;
	}
}

/* ------------------------------------------------------------------------------------------
 * Capture: the upper directory becomes the output tree
 * ------------------------------------------------------------------------------------------ */

char* record_buf;
int record_len;
int record_cap;

void record(char kind, char* path)
{
	char* esc = escape(path);
	int need = strlen(esc) + 3;
	char* bigger;
	if (record_len + need >= record_cap) {
		bigger = calloc(record_cap * 2 + need + 1, 1);
		memcpy(bigger, record_buf, record_len);
		record_buf = bigger;
		record_cap = record_cap * 2 + need;
	}
	record_buf[record_len] = kind;
	record_buf[record_len + 1] = ' ';
	strcpy(record_buf + record_len + 2, esc);
	record_len = record_len + need;
	record_buf[record_len - 1] = '\n';
	free(esc);
}

char* skel_root;

/* Walk upper dir `dir` (root-relative path `rel`): whiteouts become 'D' records, opaque
 * directories 'O' records; directories that were only copied up (they exist below, the step
 * changed nothing in them) are pruned. Returns 1 if `dir` keeps something. */
int capture(char* dir, char* rel)
{
	struct entry* e = list_dir(dir);
	char* p;
	char* r;
	char* val;
	int m;
	int t;
	int keep = 0;
	int sub;
	int n;
	char* sk;
	while (e != NULL) {
		p = path_join(dir, e->name);
		r = path_join(rel, e->name);
		m = path_mode(p);
		if (m < 0) fail("cannot stat", p, m);
		t = m & NS_S_IFMT;
		if (t == NS_S_IFCHR) {
			if (last_rdev() == 0) record('D', r);
			else {
				record('X', r);
				out2("ns-run: warning: dropping device file "); out2(r); out2("\n");
			}
			check(ns_unlink(p), "cannot remove", p);
		} else if (t == NS_S_IFDIR) {
			val = calloc(8, 1);
			n = ns_lgetxattr(p, "user.overlay.opaque", val, 4);
			sub = capture(p, r);
			if (n > 0) {
				if (val[0] == 'y') {
					record('O', r);
					sub = 1;
				}
			}
			if (sub == 0) {
				sk = cat2(skel_root, r);
				if (path_mode(sk) >= 0) {
					check(ns_rmdir(p), "cannot prune", p);
				} else sub = 1; /* a new empty directory is a change */
				free(sk);
			}
			if (sub) keep = 1;
			free(val);
		} else if (t == NS_S_IFREG) {
			keep = 1;
		} else if (t == NS_S_IFLNK) {
			keep = 1;
		} else {
			record('X', r);
			out2("ns-run: warning: dropping special file (fifo/socket) "); out2(r); out2("\n");
			check(ns_unlink(p), "cannot remove", p);
		}
		free(p);
		free(r);
		e = e->next;
	}
	return keep;
}

/* ------------------------------------------------------------------------------------------
 * Pins
 * ------------------------------------------------------------------------------------------ */

int pin_failures;

void checksums_fail(char* file, int n, char* line)
{
	out2("ns-run: ");
	out2(step_label);
	out2(": ");
	out2(file);
	out2(" line ");
	out2(itoa10(n));
	out2(": not a pin ('<64 hex digits>  <path>'):\n  ");
	out2(line);
	out2("\n");
	exit(1);
}

void pin_check(char* root, char* file, char* expected)
{
	char* host = cat2(root, file);
	char* actual = sha256_file(host);
	if (actual == NULL) {
		out2("ns-run: "); out2(step_label); out2(": pinned file "); out2(file);
		out2(" is missing (expected sha256 "); out2(expected); out2(")\n");
		pin_failures = pin_failures + 1;
		return;
	}
	if (strcmp(actual, expected) != 0) {
		out2("ns-run: "); out2(step_label); out2(": checksum mismatch for "); out2(file);
		out2("\n  expected: "); out2(expected); out2("\n  actual:   "); out2(actual); out2("\n");
		pin_failures = pin_failures + 1;
		return;
	}
	out2("ns-run: pin ok: "); out2(file); out2(" "); out2(actual); out2("\n");
}

/* An upstream checksums file (sha256sum format: "<64 hex>  <path>"); relative paths are relative
 * to `base` (the directory the pass script ran in). Any other line fails the step naming the
 * file and line: a pin that cannot be read is never skipped. */
void checksums_check(char* root, char* file, char* base)
{
	int len = 0;
	char* text = read_file(cat2(root, file), &len);
	char* line;
	char* nl;
	char* name;
	int n = 0;
	int count = 0;
	if (text == NULL) fail("cannot read checksums file", file, read_err);
	line = text;
	while (line[0] != 0) {
		n = n + 1;
		nl = strchr(line, '\n');
		if (nl != NULL) nl[0] = 0;
		if (line[0] != 0) {
			if (strlen(line) < 67) checksums_fail(file, n, line);
			if (line[64] != ' ') checksums_fail(file, n, line);
			if (line[65] != ' ') checksums_fail(file, n, line);
			name = line + 66;
			line[64] = 0;
			if (is_hex64(line) == 0) {
				line[64] = ' ';
				checksums_fail(file, n, line);
			}
			if (name[0] == ' ') checksums_fail(file, n, name);
			if (name[0] != '/') name = path_join(base, name);
			pin_check(root, name, line);
			count = count + 1;
		}
		if (nl == NULL) break;
		line = nl + 1;
	}
	if (count == 0) fail("checksums file has no pins:", file, 0);
}

/* ------------------------------------------------------------------------------------------
 * Namespaces
 * ------------------------------------------------------------------------------------------ */

void explain_userns(int r)
{
	out2("ns-run: cannot create a user namespace: ");
	out2(errname(r));
	out2("\n  The runner needs unprivileged (nested) user namespaces inside the Nix sandbox.\n"
	     "  Check: cat /proc/sys/user/max_user_namespaces   (must be > 0)\n"
	     "         cat /proc/sys/kernel/unprivileged_userns_clone   (Debian/Ubuntu kernels: must be 1)\n"
	     "         sysctl kernel.apparmor_restrict_unprivileged_userns   (Ubuntu >= 23.10: must be 0)\n"
	     "  There is no fallback: a step is never built without its namespace.\n");
}

void explain_overlay(int r, char* opts)
{
	out2("ns-run: cannot mount overlayfs in the user namespace: ");
	out2(errname(r));
	out2("\n  The runner stacks the earlier steps' outputs with an unprivileged overlayfs mount\n"
	     "  (Linux >= 5.11, option userxattr). Check: grep overlay /proc/filesystems;\n"
	     "  uname -r; and that the build directory's file system supports user xattrs.\n"
	     "  There is no fallback to copying.\n");
	if (r == -22) {
		out2("  mount options were ");
		out2(itoa10(strlen(opts)));
		out2(" bytes (the kernel takes one page); with many layers use a checkpoint.\n");
	}
}

void write_id_maps(int uid, int gid)
{
	char* m;
	int fd;
	fd = ns_open("/proc/self/setgroups", NS_O_WRONLY, 0);
	if (fd >= 0) {
		write(fd, "deny", 4);
		close(fd);
	}
	m = cat3("0 ", itoa10(uid), " 1\n");
	fd = ns_open("/proc/self/uid_map", NS_O_WRONLY, 0);
	if (fd < 0) fail("cannot open", "/proc/self/uid_map", fd);
	check(ns_write(fd, m, strlen(m)), "cannot write", "/proc/self/uid_map");
	ns_close(fd);
	m = cat3("0 ", itoa10(gid), " 1\n");
	fd = ns_open("/proc/self/gid_map", NS_O_WRONLY, 0);
	if (fd < 0) fail("cannot open", "/proc/self/gid_map", fd);
	check(ns_write(fd, m, strlen(m)), "cannot write", "/proc/self/gid_map");
	ns_close(fd);
}

void enter_namespace()
{
	int uid = ns_getuid();
	int gid = ns_getgid();
	int r = ns_unshare(NS_CLONE_NEWUSER | NS_CLONE_NEWNS);
	if (r < 0) {
		explain_userns(r);
		exit(1);
	}
	write_id_maps(uid, gid);
	r = ns_mount("none", "/", NULL, NS_MS_REC | NS_MS_PRIVATE, NULL);
	if (r < 0) fail("cannot make mounts private", "/", r);
}

/* ------------------------------------------------------------------------------------------
 * Modes
 * ------------------------------------------------------------------------------------------ */

char** main_envp;

int dump_env(char* file)
{
	char** p = main_envp;
	int i = 0;
	char* buf = calloc(1, 1);
	char* next;
	int len = 0;
	int n;
	int drop;
	while (p[i] != NULL) {
		drop = 0;
		/* shell bookkeeping that the shell recomputes and that would drift from step to step */
		if (strncmp(p[i], "_=", 2) == 0) drop = 1;
		if (strncmp(p[i], "PWD=", 4) == 0) drop = 1;
		if (strncmp(p[i], "OLDPWD=", 7) == 0) drop = 1;
		if (strncmp(p[i], "SHLVL=", 6) == 0) drop = 1;
		if (drop == 0) {
			n = strlen(p[i]) + 1;
			next = calloc(len + n + 1, 1);
			memcpy(next, buf, len);
			memcpy(next + len, p[i], n);
			free(buf);
			buf = next;
			len = len + n;
		}
		i = i + 1;
	}
	write_file(file, buf, len, 420);
	return 0;
}

char** read_environ(char* file, char** extra)
{
	int len = 0;
	char* text = NULL;
	int count = 0;
	int i = 0;
	int j = 0;
	char** env;
	if (file != NULL) {
		text = read_file(file, &len);
		if (text == NULL) fail("cannot read environment", file, read_err);
	}
	while (i < len) {
		if (text[i] == 0) count = count + 1;
		i = i + 1;
	}
	i = 0;
	while (extra[i] != NULL) i = i + 1;
	env = calloc(count + i + 1, sizeof(char*));
	i = 0;
	j = 0;
	while (i < len) {
		env[j] = text + i;
		j = j + 1;
		i = i + strlen(text + i) + 1;
	}
	i = 0;
	while (extra[i] != NULL) {
		env[j] = extra[i];
		j = j + 1;
		i = i + 1;
	}
	return env;
}

/* Make a file from a lower layer writable in place: store files belong to a user the sandbox
 * does not map, so only a copy in the upper layer can be opened for writing. The copy is streamed
 * through one buffer (nothing is kept in memory); the spec item becomes a "copiedup" record with
 * the copy's inode, size and ctime, so that capture can drop an untouched copy without reading
 * it again (see wait_for_tick: any later write changes the ctime). */
char* upper_root;

void copy_up(struct item* it, char* merged, char* path)
{
	char* l = cat2(merged, path);
	char* u;
	int r = path_mode(l);
	int* times;
	if (r < 0) {
		it->key = "skipped";
		return;
	}
	if ((r & NS_S_IFMT) != NS_S_IFREG) {
		it->key = "skipped";
		return;
	}
	/* the copy looks like the file it replaces: same permission bits and mtime (a copy with
	 * "now" as mtime would be newer than freshly unpacked sources, the reverse of upstream's
	 * order, and could wake up make's regeneration rules); atime is left alone */
	times = calloc(4, sizeof(int));
	times[1] = 1073741822; /* UTIME_OMIT */
	times[2] = last_mtime();
	times[3] = last_mtime_ns();
	copy_file(l, l, r & 511);
	/* only group/other write bits can have been taken by the umask (022); store files have none */
	if ((r & 18) != 0) check(ns_chmod(l, r & 511), "cannot keep the mode of the copy of", l);
	r = ns_utimensat(-100, l, times, 256); /* AT_FDCWD, AT_SYMLINK_NOFOLLOW */
	if (r < 0) fail("cannot keep the mtime of the copy of", l, r);
	free(times);
	u = cat2(upper_root, path);
	r = path_mode(u);
	if (r < 0) fail("copy-up left no file in the upper layer:", u, r);
	it->key = "copiedup";
	it->value = path;
	it->ino = last_ino();
	it->size = last_size();
	it->size_hi = last_size_hi();
	it->ctime = last_ctime();
	it->ctime_ns = last_ctime_ns();
	free(l);
	free(u);
}

/* 1 if the copy of `it` in the upper layer is exactly what copy_up left (same inode, size, ctime) */
int copy_untouched(struct item* it)
{
	char* u = cat2(upper_root, it->value);
	int m = path_mode(u);
	int same = 1;
	free(u);
	if (m < 0) return 0;
	if ((m & NS_S_IFMT) != NS_S_IFREG) return 0;
	if (last_ino() != it->ino) same = 0;
	if (last_size() != it->size) same = 0;
	if (last_size_hi() != it->size_hi) same = 0;
	if (last_ctime() != it->ctime) same = 0;
	if (last_ctime_ns() != it->ctime_ns) same = 0;
	return same;
}

/* Wait until the file system's clock has moved past every copy's ctime: a write in the same
 * clock tick as the copy would leave the ctime unchanged, so the step starts only once any
 * write is bound to change it. Costs at most one tick (a few ms). */
int latest_s;
int latest_ns;

void note_ctime(struct item* it)
{
	if (it->ctime > latest_s) {
		latest_s = it->ctime;
		latest_ns = it->ctime_ns;
	} else if (it->ctime == latest_s) {
		if (it->ctime_ns > latest_ns) latest_ns = it->ctime_ns;
	}
}

void wait_for_tick(char* dir)
{
	char* probe = path_join(dir, ".runner-tick");
	int tries = 0;
	int later;
	while (1) {
		write_file(probe, "t", 1, 420);
		path_mode(probe);
		later = 0;
		if (last_ctime() > latest_s) later = 1;
		if (last_ctime() == latest_s) {
			if (last_ctime_ns() > latest_ns) later = 1;
		}
		if (later) break;
		tries = tries + 1;
		if (tries > 10000000) fail("the file system clock does not advance (ctime) in", dir, 0);
	}
	ns_unlink(probe);
	free(probe);
}

/* copy_up every regular file below root-relative directory `dir` (items appended to `after`) */
int copied_files;

struct item* copy_up_tree(struct item* after, char* merged, char* dir)
{
	char* host = cat2(merged, dir);
	struct entry* e;
	struct entry* next;
	char* rel;
	char* p;
	int m;
	struct item* n;
	if ((path_mode(host) & NS_S_IFMT) != NS_S_IFDIR) return after;
	e = list_dir(host);
	free(host);
	while (e != NULL) {
		rel = path_join(dir, e->name);
		p = cat2(merged, rel);
		m = path_mode(p) & NS_S_IFMT;
		if (m == NS_S_IFDIR) after = copy_up_tree(after, merged, rel);
		else if (m == NS_S_IFREG) {
			n = calloc(1, sizeof(struct item));
			n->next = after->next;
			after->next = n;
			copy_up(n, merged, rel);
			note_ctime(n);
			copied_files = copied_files + 1;
			after = n;
		}
		free(p);
		if (m != NS_S_IFREG) free(rel);
		next = e->next;
		free(e->name);
		free(e);
		e = next;
	}
	return after;
}

/* VmHWM of /proc/self/status: the runner's own peak memory */
char* peak_rss()
{
	int len = 0;
	char* text = read_file("/proc/self/status", &len);
	char* p;
	char* nl;
	if (text == NULL) return "?";
	p = strstr(text, "VmHWM:");
	if (p == NULL) return "?";
	p = p + 6;
	while (p[0] == ' ') p = p + 1;
	while (p[0] == 9) p = p + 1;
	nl = strchr(p, '\n');
	if (nl != NULL) nl[0] = 0;
	return p;
}

/* Nix's seccomp filter (filter-syscalls, on by default) refuses chmod/fchmod/fchmodat with
 * S_ISUID or S_ISGID. Try MODE on a scratch file in `dir`: 0, or the kernel's error. */
int try_mode(char* dir, int mode)
{
	char* f = path_join(dir, ".runner-setuid-probe");
	int r;
	write_file(f, "", 0, 420);
	r = ns_chmod(f, mode);
	ns_unlink(f);
	free(f);
	return r;
}

int try_setuid(char* dir)
{
	return try_mode(dir, 2541); /* 04755 */
}

void explain_setuid(int r, char* steps)
{
	out2("ns-run: ");
	if (step_label != NULL) {
		out2(step_label);
		out2(": ");
	}
	out2("setting a setuid bit (chmod 04755) fails here: ");
	out2(errname(r));
	out2("\n  Steps of the chain install setuid programs, and live-bootstrap's pinned package tarballs\n"
	     "  record those modes, so the bits must really be set while the step packs its tarball (the\n"
	     "  store never keeps them: Nix resets every output file to 0444/0555 afterwards).\n"
	     "  Nix's seccomp filter refuses setuid/setgid chmod unless `filter-syscalls = false`.\n");
	if (steps != NULL) {
		out2("  Steps that need it: ");
		out2(steps);
		out2("\n");
	}
	out2("  Set it in the nix.conf of every machine that builds these steps (/etc/nix/nix.conf:\n"
	     "  filter-syscalls = false; for Hydra and remote builders, on each build machine), or, as root\n"
	     "  or a trusted user, pass --option filter-syscalls false (python -m orchestrator build does).\n");
}

void bind_dev(char* root, char* name)
{
	char* host = cat2("/dev/", name);
	char* target = cat3(root, "/dev/", name);
	int r;
	write_file(target, "", 0, 420);
	r = ns_mount(host, target, NULL, NS_MS_BIND, NULL);
	if (r < 0) fail("cannot bind-mount", host, r);
}

/* Bind-mount SRC (a directory or a file) at DST inside the root, read-only when asked. */
void bind_into(char* root, char* src, char* dst, int readonly)
{
	char* target = cat2(root, dst);
	int r;
	if ((path_mode(src) & NS_S_IFMT) == NS_S_IFDIR) mkdirs(target, 493);
	else {
		mkdirs(dirname_of(target), 493);
		write_file(target, "", 0, 420);
	}
	r = ns_mount(src, target, NULL, NS_MS_BIND | NS_MS_REC, NULL);
	if (r < 0) fail("cannot bind-mount", src, r);
	if (readonly) {
		r = ns_mount(src, target, NULL, NS_MS_BIND | NS_MS_REMOUNT | NS_MS_RDONLY, NULL);
		if (r < 0) fail("cannot make read-only", target, r);
	}
}

/* After the run: the empty mount point of a bind (and its empty parents) leave the upper layer. */
void prune_mount_point(char* upper, char* dst)
{
	char* p = cat2(upper, dst);
	int done = 0;
	if ((path_mode(p) & NS_S_IFMT) == NS_S_IFREG) {
		ns_unlink(p);
		p = dirname_of(p);
	}
	while (done == 0) {
		if (strlen(p) <= strlen(upper)) done = 1;
		else if (ns_rmdir(p) < 0) done = 1;
		else p = dirname_of(p);
	}
}

/* ------------------------------------------------------------------------------------------
 * A step, phase by phase (mode_step at the end). The phases share the build's places:
 * ------------------------------------------------------------------------------------------ */

char* st_out;      /* where tree/, deletions and state/ go ($out, or the "layer-output") */
char* st_top;      /* the build directory */
char* st_lowers;   /* overlay lowerdir list, top layer first */
int st_nlayers;
char* st_merged;   /* the assembled root */
char* st_upper;    /* $out/tree: the overlay's upper directory, the step's output */
char* st_work;
char* st_runner;   /* /tmp/.runner inside the root */
char** st_argv;
int t_layers;
int t_skeleton;
int t_mount;
int t_assembled;
int t_ran;

/* Read the spec; a step that sets setuid bits stops here, before any work, if the sandbox
 * refuses them; then the user + mount namespace. */
void step_begin()
{
	char* spec_path = getenv("specPath");
	char* text;
	int len = 0;
	int r;
	st_out = getenv("out");
	st_top = getenv("NIX_BUILD_TOP");
	if (spec_path == NULL) fail("no $specPath (the derivation must pass its spec with passAsFile)", NULL, 0);
	if (st_out == NULL) fail("no $out", NULL, 0);
	if (st_top == NULL) st_top = "/build";
	text = read_file(spec_path, &len);
	if (text == NULL) fail("cannot read spec", spec_path, read_err);
	spec = parse_spec(text);
	/* "layer-output NAME": the runner's output (tree/, deletions, state/) goes to the derivation
	 * output NAME instead of $out (a bridge member keeps $out for what it installs) */
	if (spec_get("layer-output") != NULL) {
		st_out = getenv(spec_get("layer-output"));
		if (st_out == NULL) fail("no such output variable", spec_get("layer-output"), 0);
	}
	step_label = spec_get("label");
	if (step_label == NULL) step_label = "step";
	millis();
	out2("ns-run: ==== "); out2(step_label); out2(" ====\n");
	check(ns_chdir(st_top), "cannot enter", st_top);
	if (spec_get("require") != NULL) {
		r = try_setuid(st_top);
		if (r < 0) {
			explain_setuid(r, spec_get("setuid-steps"));
			exit(1);
		}
		out2("ns-run: setuid bits can be set here (filter-syscalls is off)\n");
	}
	enter_namespace();
}

/* The layers, bottom to top ("layer DIR RECORD", RECORD "-" when nothing was deleted): each
 * linked as l/N, a layer with deletions gets a whiteout layer w/N above it. */
void stack_layers()
{
	struct item* it = spec;
	char* l;
	char* wh;
	mkdirs("l", 493);
	mkdirs("w", 493);
	mkdirs("o", 493);
	mkdirs("ow", 493);
	mkdirs("om", 493);
	st_lowers = "";
	while (it != NULL) {
		if (strcmp(it->key, "layer") == 0) {
			l = cat2("l/", itoa10(st_nlayers));
			check(ns_symlink(it->a, l), "cannot link layer", it->a);
			if (it->b != NULL) {
				if (strcmp(it->b, "-") != 0) {
					wh = cat2("w/", itoa10(st_nlayers));
					if (make_whiteouts(it->b, wh, st_nlayers)) {
						if (st_nlayers == 0) fail("the bottom layer cannot have deletions", it->b, 0);
						st_lowers = cat3(wh, ":", st_lowers);
					}
				}
			}
			st_lowers = cat3(l, ":", st_lowers);
			st_nlayers = st_nlayers + 1;
			if (st_nlayers > MAXLAYERS) fail("too many layers", NULL, 0);
		}
		it = it->next;
	}
	if (st_nlayers == 0) fail("no layers in spec", NULL, 0);
	st_lowers[strlen(st_lowers) - 1] = 0;
	st_merged = path_join(st_top, "root");
	mkdirs(st_merged, 493);
}

/* A checkpoint: the merged view of the layers, copied out, nothing deleted. */
int flatten_layers()
{
	char* opts;
	int r;
	if (st_nlayers == 1) opts = cat2("lowerdir=", cat2(st_lowers, ":l/empty"));
	else opts = cat2("lowerdir=", st_lowers);
	if (st_nlayers == 1) mkdirs("l/empty", 493);
	opts = cat2(opts, ",userxattr");
	r = ns_mount("overlay", st_merged, "overlay", NS_MS_RDONLY, opts);
	if (r < 0) {
		explain_overlay(r, opts);
		exit(1);
	}
	mkdirs(st_out, 493);
	copy_tree(st_merged, path_join(st_out, "tree"));
	write_file(path_join(st_out, "deletions"), "", 0, 420);
	check(ns_umount2(st_merged, NS_MNT_DETACH), "cannot unmount", st_merged);
	out2("ns-run: flattened "); out2(itoa10(st_nlayers)); out2(" layers\n");
	return 0;
}

/* The writable root: the skeleton of directories (layer by layer) at the bottom of the lower
 * list, the layers above it, upper = $out/tree. */
void mount_root()
{
	struct item* it = spec;
	char* opts;
	int r;
	mkdirs("skel", 493);
	skel_root = path_join(st_top, "skel");
	while (it != NULL) {
		if (strcmp(it->key, "layer") == 0) {
			if (it->b != NULL) {
				if (strcmp(it->b, "-") != 0) skeleton_deletions(it->b, skel_root);
			}
			skeleton_layer(it->a, skel_root, 1);
		}
		it = it->next;
	}
	t_skeleton = millis();
	mkdirs(st_out, 493);
	st_upper = path_join(st_out, "tree");
	upper_root = st_upper;
	st_work = path_join(st_out, ".work");
	mkdirs(st_upper, 493);
	mkdirs(st_work, 493);
	opts = cat3("lowerdir=skel:", st_lowers, ",upperdir=");
	opts = cat3(opts, st_upper, ",workdir=");
	opts = cat3(opts, st_work, ",userxattr,volatile");
	if (strlen(opts) > 4000) {
		explain_overlay(-22, opts);
		exit(1);
	}
	r = ns_mount("overlay", st_merged, "overlay", 0, opts);
	if (r < 0) {
		explain_overlay(r, opts);
		exit(1);
	}
	t_mount = millis();
}

/* What rootfs.py's bwrap invocation provides (`--dir /dev`, six `--dev-bind` nodes, `--tmpfs
 * /dev/shm`, `--proc /proc`, `--bind /sys /sys`, `--tmpfs /tmp`; no `--dev`). /dev is the root's
 * own directory, as upstream's is target/dev on disk: what a step makes there (populate_device_nodes'
 * /dev/stdout link) stays for the later steps; the nodes' mount points are pruned after the run.
 * /dev/full, /dev/fd, /dev/stdin, /dev/stderr: upstream has none, so neither has a step here. */
char** dev_nodes;

void provide_system()
{
	char* target = path_join(st_merged, "dev");
	int i = 0;
	dev_nodes = calloc(7, sizeof(char*));
	dev_nodes[0] = "null";
	dev_nodes[1] = "zero";
	dev_nodes[2] = "random";
	dev_nodes[3] = "urandom";
	dev_nodes[4] = "ptmx";
	dev_nodes[5] = "tty";
	dev_nodes[6] = NULL;
	if (path_mode(target) < 0) mkdirs(target, 493);
	while (dev_nodes[i] != NULL) {
		bind_dev(st_merged, dev_nodes[i]);
		i = i + 1;
	}
	target = path_join(st_merged, "dev/shm");
	mkdirs(target, 493);
	check(ns_mount("tmpfs", target, "tmpfs", NS_MS_NOSUID | NS_MS_NODEV, "mode=0755"), "cannot mount tmpfs on", target);
	target = path_join(st_merged, "proc");
	if (path_mode(target) < 0) mkdirs(target, 493);
	check(ns_mount("/proc", target, NULL, NS_MS_BIND | NS_MS_REC, NULL), "cannot bind-mount /proc on", target);
	target = path_join(st_merged, "tmp");
	if (path_mode(target) < 0) mkdirs(target, 493);
	check(ns_mount("tmpfs", target, "tmpfs", NS_MS_NOSUID | NS_MS_NODEV, "mode=1777"), "cannot mount tmpfs on", target);
	/* /sys: bwrap binds the host's; the Nix sandbox has none, and a sysfs mount is refused in the
	 * nested namespace. What the scripts check is that `mount` shows one (finalize_fhs:
	 * `mount | grep '/sys' || mount -t sysfs ...`): an empty read-only tmpfs, nothing of the host. */
	target = path_join(st_merged, "sys");
	if (path_mode(target) < 0) mkdirs(target, 493);
	check(ns_mount("sysfs-stand-in", target, "tmpfs", NS_MS_RDONLY | NS_MS_NOSUID | NS_MS_NODEV | 8, "mode=0555"), "cannot mount tmpfs on", target);
}

/* The runner's own files live in /tmp/.runner (tmpfs: never part of the output). */
void provide_runner()
{
	char* self = spec_get("self");
	char* data;
	int len = 0;
	st_runner = path_join(st_merged, "tmp/.runner");
	mkdirs(st_runner, 493);
	if (self != NULL) {
		data = read_file(self, &len);
		if (data == NULL) fail("cannot read", self, read_err);
		write_file(path_join(st_runner, "ns-run"), data, len, 493);
	}
}

/* This step's distfiles: tmpfs /external/distfiles with each file bind-mounted read-only. A step
 * without distfiles of its own finds one placeholder, so that live-bootstrap's loops over the
 * directory (improve/clean_sources.sh: `for source in "${DISTFILES}/"*; do rm ...`) see what
 * they expect, a non-empty directory, instead of an unmatched glob. Deleting it is harmless:
 * the directory is this step's tmpfs. */
void provide_distfiles()
{
	char* target = path_join(st_merged, "external/distfiles");
	struct item* it = spec;
	char* l;
	char* data;
	int r;
	int n = 0;
	if (path_mode(target) < 0) mkdirs(target, 493);
	check(ns_mount("tmpfs", target, "tmpfs", NS_MS_NOSUID | NS_MS_NODEV, "mode=0755"), "cannot mount tmpfs on", target);
	while (it != NULL) {
		if (strcmp(it->key, "distfile") == 0) {
			l = path_join(target, it->a);
			write_file(l, "", 0, 420);
			r = ns_mount(it->b, l, NULL, NS_MS_BIND, NULL);
			if (r < 0) fail("cannot bind-mount distfile", it->b, r);
			ns_mount(it->b, l, NULL, NS_MS_BIND | NS_MS_REMOUNT | NS_MS_RDONLY, NULL);
			n = n + 1;
		}
		it = it->next;
	}
	if (n == 0) {
		data = "This step has no distfiles of its own (the runner gives each step only its own).\n";
		write_file(path_join(target, "runner-placeholder"), data, strlen(data), 420);
	}
}

/* Store paths inside the root at their own paths (for steps whose results live in the store,
 * not in the layer): "bind SRC DST" read-only, "output NAME" the derivation output NAME (created,
 * writable), "scratch DST" a writable directory of the build directory (not part of any output).
 * Mount points created in the upper layer are removed again after the run. */
void provide_binds()
{
	struct item* it = spec;
	char* l;
	while (it != NULL) {
		if (strcmp(it->key, "bind") == 0) {
			if (it->b == NULL) fail("bind needs SRC DST", it->value, 0);
			bind_into(st_merged, it->a, it->b, 1);
		} else if (strcmp(it->key, "output") == 0) {
			l = getenv(it->value);
			if (l == NULL) fail("no such output variable", it->value, 0);
			mkdirs(l, 493);
			bind_into(st_merged, l, l, 0);
		} else if (strcmp(it->key, "scratch") == 0) {
			l = path_join(st_top, "scratch");
			mkdirs(l, 493);
			bind_into(st_merged, l, it->value, 0);
		}
		it = it->next;
	}
}

/* "copyupdir DIR SUFFIX": copy_up every regular file directly in DIR whose name ends in SUFFIX
 * (items inserted after `it`) */
void copy_up_dir(struct item* it)
{
	char* l = cat2(st_merged, it->a);
	struct entry* e;
	struct item* n;
	char* data;
	int r;
	if (path_mode(l) < 0) return;
	e = list_dir(l);
	while (e != NULL) {
		r = strlen(e->name) - strlen(it->b);
		if (r >= 0) {
			if (strcmp(e->name + r, it->b) == 0) {
				data = path_join(it->a, e->name);
				if ((path_mode(cat2(st_merged, data)) & NS_S_IFMT) == NS_S_IFREG) {
					n = calloc(1, sizeof(struct item));
					n->next = it->next;
					it->next = n;
					copy_up(n, st_merged, data);
					if (strcmp(n->key, "copiedup") == 0) note_ctime(n);
				}
			}
		}
		e = e->next;
	}
}

/* Files: "file NAME ENVVAR" into /tmp/.runner, "put ROOTPATH ENVVAR" into the root, "copyin SRC
 * DST" a tree, "mkdir DIR", and the copy-ups that make files of lower layers writable in place. */
void place_files()
{
	struct item* it = spec;
	char* data;
	char* l;
	int len = 0;
	while (it != NULL) {
		if (strcmp(it->key, "file") == 0) {
			data = getenv(it->b);
			if (data == NULL) fail("no such passAsFile variable", it->b, 0);
			data = read_file(data, &len);
			write_file(path_join(st_runner, it->a), data, len, 493);
		} else if (strcmp(it->key, "put") == 0) {
			data = getenv(it->b);
			if (data == NULL) fail("no such passAsFile variable", it->b, 0);
			data = read_file(data, &len);
			l = cat2(st_merged, it->a);
			mkdirs(dirname_of(l), 493);
			ns_unlink(l);
			write_file(l, data, len, 420);
		} else if (strcmp(it->key, "copyin") == 0) {
			l = cat2(st_merged, it->b);
			mkdirs(dirname_of(l), 493);
			copy_tree(it->a, l);
		} else if (strcmp(it->key, "mkdir") == 0) {
			mkdirs(cat2(st_merged, it->a), 493);
		} else if (strcmp(it->key, "copyup") == 0) {
			copy_up(it, st_merged, it->value);
			if (strcmp(it->key, "copiedup") == 0) note_ctime(it);
		} else if (strcmp(it->key, "copyuptree") == 0) {
			copy_up_tree(it, st_merged, it->value);
			out2("ns-run: copied up "); out2(itoa10(copied_files)); out2(" files below "); out2(it->value); out2("\n");
		} else if (strcmp(it->key, "copyupdir") == 0) copy_up_dir(it);
		it = it->next;
	}
}

/* The command line ("arg") and the environment: "environ FILE" (NUL-separated), then "setenv
 * NAME=VALUE" and "passenv NAME" (NAME=value from the builder's own environment, e.g.
 * NIX_BUILD_CORES). Returns the number of arguments. */
int prepare_command()
{
	struct item* it = spec;
	char** extra;
	char* data;
	char* environ_file = NULL;
	int argc = 0;
	int nextra = 0;
	while (it != NULL) {
		if (strcmp(it->key, "arg") == 0) argc = argc + 1;
		if (strcmp(it->key, "setenv") == 0) nextra = nextra + 1;
		if (strcmp(it->key, "passenv") == 0) nextra = nextra + 1;
		if (strcmp(it->key, "environ") == 0) environ_file = it->value;
		it = it->next;
	}
	st_argv = calloc(argc + 1, sizeof(char*));
	extra = calloc(nextra + 1, sizeof(char*));
	argc = 0;
	nextra = 0;
	it = spec;
	while (it != NULL) {
		if (strcmp(it->key, "arg") == 0) {
			st_argv[argc] = it->value;
			argc = argc + 1;
		}
		if (strcmp(it->key, "setenv") == 0) {
			extra[nextra] = it->value;
			nextra = nextra + 1;
		}
		if (strcmp(it->key, "passenv") == 0) {
			data = getenv(it->value);
			if (data != NULL) {
				extra[nextra] = cat3(it->value, "=", data);
				nextra = nextra + 1;
			}
		}
		it = it->next;
	}
	main_envp = read_environ(environ_file, extra);
	return argc;
}

/* Run the command chrooted; the wait status (0 when there is no command). */
int run_command(int argc)
{
	char* cwd = spec_get("cwd");
	int pid = 1;
	int status = 0;
	int r;
	if (cwd == NULL) cwd = "/";
	if (argc != 0) pid = ns_fork();
	if (pid < 0) fail("cannot fork", NULL, pid);
	if (pid == 0) {
		check(ns_chroot(st_merged), "cannot chroot to", st_merged);
		check(ns_chdir(cwd), "cannot enter", cwd);
		r = ns_execve(st_argv[0], st_argv, main_envp);
		fail("cannot execute", st_argv[0], r);
	}
	if (argc != 0) {
		r = ns_waitpid(pid, &status);
		if (r < 0) fail("waitpid", NULL, r);
	}
	return status;
}

/* After a failure: a step not marked in the runner data may have tried a setuid/setgid mode,
 * which Nix's seccomp filter refuses with a bare EPERM. The kernel does not say which call
 * failed, so the note is given whenever this sandbox refuses either bit. */
void note_setuid_refusal()
{
	int r;
	if (spec_get("require") != NULL) return; /* checked before the run: the bits work */
	r = try_mode(st_top, 2541); /* 04755 */
	if (r >= 0) r = try_mode(st_top, 1517); /* 02755 */
	if (r >= 0) return;
	out2("  note: this sandbox refuses setuid/setgid modes (chmod 04755/02755: ");
	out2(errname(r));
	out2("; Nix's `filter-syscalls`\n"
	     "  is on). If the step failed with \"Operation not permitted\" on a chmod, install -m or\n"
	     "  chown that sets such a bit, mark it \"setuid\": true in steps/overrides/runner/steps.json\n"
	     "  (with the reason) and build with filter-syscalls = false.\n");
}

void report_failure(int status)
{
	struct item* it = spec;
	out2("ns-run: FAILED: ");
	out2(step_label);
	if ((status & 127) != 0) {
		out2(" was killed by signal ");
		out2(itoa10(status & 127));
	} else {
		out2(" exited with status ");
		out2(itoa10((status >> 8) & 255));
	}
	out2("\n");
	while (it != NULL) {
		if (strcmp(it->key, "expect") == 0) {
			if (path_mode(cat2(st_merged, it->b)) >= 0) pin_check(st_merged, it->b, it->a);
		}
		it = it->next;
	}
	note_setuid_refusal();
	out2("  re-enter it: nix build --keep-failed keeps the sandbox's build directory; what the\n"
	     "  step wrote is in the output's tree/ (the upper layer), its layers are in the spec.\n");
}

/* The pins, while the root is still assembled; then the state the next step reads (env,
 * bootstrap.cfg, the exported environment). */
void check_and_save()
{
	struct item* it = spec;
	char* state_dir;
	char* data;
	int len = 0;
	while (it != NULL) {
		if (strcmp(it->key, "expect") == 0) pin_check(st_merged, it->b, it->a);
		if (strcmp(it->key, "checksums") == 0) checksums_check(st_merged, it->a, it->b);
		it = it->next;
	}
	if (pin_failures != 0) {
		out2("ns-run: FAILED: ");
		out2(step_label);
		out2(": ");
		out2(itoa10(pin_failures));
		out2(" file(s) do not match live-bootstrap's pins\n");
		exit(1);
	}
	state_dir = path_join(st_out, "state");
	mkdirs(state_dir, 493);
	it = spec;
	while (it != NULL) {
		if (strcmp(it->key, "state") == 0) {
			data = read_file(cat2(st_merged, it->b), &len);
			if (data == NULL) fail("the step left no", it->b, read_err);
			write_file(path_join(state_dir, it->a), data, len, 420);
		}
		it = it->next;
	}
}

/* Take the root apart and turn the upper directory into the output: mount points leave it,
 * copies the step did not touch are dropped (same inode, size and ctime as copy_up left),
 * whiteouts become the deletion record. */
void capture_output()
{
	struct item* it = spec;
	char* l;
	int i = 0;
	check(ns_umount2(st_merged, NS_MNT_DETACH), "cannot unmount", st_merged);
	remove_tree(st_work);
	while (dev_nodes[i] != NULL) {
		prune_mount_point(st_upper, cat2("/dev/", dev_nodes[i]));
		i = i + 1;
	}
	prune_mount_point(st_upper, "/dev/shm");
	while (it != NULL) {
		if (strcmp(it->key, "bind") == 0) prune_mount_point(st_upper, it->b);
		if (strcmp(it->key, "output") == 0) prune_mount_point(st_upper, getenv(it->value));
		if (strcmp(it->key, "scratch") == 0) prune_mount_point(st_upper, it->value);
		it = it->next;
	}
	it = spec;
	while (it != NULL) {
		if (strcmp(it->key, "copiedup") == 0) {
			if (copy_untouched(it)) {
				l = cat2(st_upper, it->value);
				check(ns_unlink(l), "cannot drop unchanged copy", l);
				free(l);
			}
		}
		it = it->next;
	}
	record_cap = 4096;
	record_buf = calloc(record_cap, 1);
	record_len = 0;
	capture(st_upper, "");
	write_file(path_join(st_out, "deletions"), record_buf, record_len, 420);
}

void report_done()
{
	int t_done = millis();
	out2("ns-run: "); out2(step_label); out2(": done (");
	out2(itoa10(st_nlayers)); out2(" layers, ");
	out2(itoa10(skeleton_dirs)); out2(" directories)\n");
	out2("ns-run: time: assemble "); out2(itoa10(t_assembled));
	out2(" ms (whiteout layers "); out2(itoa10(t_layers));
	out2(" ms, skeleton "); out2(itoa10(t_skeleton - t_layers));
	out2(" ms, overlay mount "); out2(itoa10(t_mount - t_skeleton));
	out2(" ms, the rest "); out2(itoa10(t_assembled - t_mount)); out2(")");
	out2(" ms, run "); out2(itoa10(t_ran - t_assembled));
	out2(" ms, capture "); out2(itoa10(t_done - t_ran)); out2(" ms");
	out2(", peak RSS "); out2(peak_rss()); out2("\n");
}

int mode_step()
{
	int argc;
	int status;
	step_begin();
	stack_layers();
	if (spec_get("flatten") != NULL) return flatten_layers();
	t_layers = millis();
	mount_root();
	provide_system();
	provide_runner();
	provide_distfiles();
	provide_binds();
	place_files();
	argc = prepare_command();
	if (latest_s != 0) wait_for_tick(st_out); /* beside the upper layer (same file system), not in it */
	t_assembled = millis();
	status = run_command(argc);
	if (status != 0) {
		report_failure(status);
		exit(1);
	}
	t_ran = millis();
	check_and_save();
	capture_output();
	report_done();
	return 0;
}

/* Check that this kernel lets us do what a step needs, in directory `dir`. */
int mode_probe(char* dir)
{
	char* l = path_join(dir, "lower");
	char* u = path_join(dir, "upper");
	char* w = path_join(dir, "work");
	char* m = path_join(dir, "merged");
	char* opts;
	int r;
	int uid = ns_getuid();
	int gid = ns_getgid();
	mkdirs(l, 493);
	mkdirs(u, 493);
	mkdirs(w, 493);
	mkdirs(m, 493);
	r = ns_unshare(NS_CLONE_NEWUSER | NS_CLONE_NEWNS);
	if (r < 0) {
		explain_userns(r);
		return 1;
	}
	write_id_maps(uid, gid);
	opts = cat3("lowerdir=", l, ",upperdir=");
	opts = cat3(opts, u, ",workdir=");
	opts = cat3(opts, w, ",userxattr");
	r = ns_mount("overlay", m, "overlay", 0, opts);
	if (r < 0) {
		explain_overlay(r, opts);
		return 1;
	}
	out2("ns-run: user namespaces and overlayfs work here\n");
	r = try_setuid(dir);
	if (r < 0) {
		out2("ns-run: setuid bits are refused here (");
		out2(errname(r));
		out2("): inside the Nix sandbox that is filter-syscalls = true;\n"
		     "  the steps that install setuid programs need filter-syscalls = false\n");
	} else out2("ns-run: setuid bits can be set here\n");
	return 0;
}

/* Builder of the setuid check derivation: fails at once, with the message, if the sandbox
 * refuses setuid bits; Nix can build it before the chain gets to the steps that need them. */
int mode_check_setuid()
{
	char* out = getenv("out");
	char* top = getenv("NIX_BUILD_TOP");
	int r;
	if (out == NULL) fail("no $out", NULL, 0);
	if (top == NULL) top = "/build";
	r = try_setuid(top);
	if (r < 0) {
		explain_setuid(r, getenv("setuidSteps"));
		return 1;
	}
	mkdirs(out, 493);
	out2("ns-run: setuid bits can be set here (filter-syscalls is off)\n");
	return 0;
}

int main(int argc, char** argv, char** envp)
{
	int i;
	char* h;
#ifdef __M2__
	main_envp = _envp; /* M2libc's crt keeps the environment here */
#else
	main_envp = envp;
#endif
	stat_buf = calloc(256, 1);
	if (argc < 2) {
		out2("usage: ns-run step | check-setuid | dump-env FILE | probe DIR | sha256 FILE...\n");
		return 2;
	}
	if (strcmp(argv[1], "step") == 0) return mode_step();
	if (strcmp(argv[1], "check-setuid") == 0) return mode_check_setuid();
	if (strcmp(argv[1], "dump-env") == 0) {
		if (argc != 3) fail("usage: ns-run dump-env FILE", NULL, 0);
		return dump_env(argv[2]);
	}
	if (strcmp(argv[1], "probe") == 0) {
		if (argc != 3) fail("usage: ns-run probe DIR", NULL, 0);
		return mode_probe(argv[2]);
	}
	if (strcmp(argv[1], "sha256") == 0) {
		i = 2;
		while (i < argc) {
			h = sha256_file(argv[i]);
			if (h == NULL) fail("cannot open", argv[i], read_err);
			out2(h); out2("  "); out2(argv[i]); out2("\n");
			i = i + 1;
		}
		return 0;
	}
	out2("ns-run: unknown mode ");
	out2(argv[1]);
	out2("\n");
	return 2;
}
