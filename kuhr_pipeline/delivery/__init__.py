"""The delivery package: Crypt4GH encryption, manifest, signature, codebook, atomic publish,
audit log; verify and decrypt."""
