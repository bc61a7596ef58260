"""Signing CPLs and PKLs: XML-DSig enveloped signatures with a SMPTE ST 430-2 certificate chain.

The chain (root -> intermediate -> leaf, RSA 2048, e = 65537, SHA-256) is made once per site under
``$DELIVER_HOME/dcp-signer/`` (or ``signer_dir`` in ``configs/dcp.yaml`` / ``$DELIVER_DCP_CONFIG``).
Private keys are written 0600 there and nowhere else: never to a DCP, a report or a log. Certificates
follow ST 430-2 §5 and the checks of §6.2: X.509 v3; O, OU, CN and dnQualifier as PrintableString;
dnQualifier = base64(SHA-1(PKCS#1 DER public key)) (§5.3.1); basicConstraints (CA with pathLen for
authorities, CA false for the leaf); keyUsage keyCertSign(+cRLSign) / digitalSignature+keyEncipherment;
subject and authority key identifiers; the leaf's CN carries the "CS" (content signer) role (§5.3.4);
each child's validity lies within its parent's.

Signatures follow ST 429-7 §6.13 / ST 429-8 §5.10 (and XML-DSig, W3C REC 2002): ``Signer`` then
``ds:Signature`` at the end of the document; canonical XML 1.0 (inclusive, without comments); SHA-1
digest of the document with the enveloped-signature transform; RSA-SHA256 (RFC 4051) signature; KeyInfo
lists the chain leaf first, each certificate with its issuer and serial number.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from specs.errors import BadInputError, VerificationError
from tasks.archive.targets import deliver_home
from tasks.dcp.config import read_dcp_config

__all__ = ["Signer", "load_signer", "ensure_signer", "sign_xml", "verify_signature", "signer_dir", "DSIG_NS",
           "dn_qualifier", "issuer_name"]

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
#: Validity: ClairMeta (and some servers) reject certificates running past 10 years; parents outlive children.
_VALIDITY_DAYS = {"root": 3600, "intermediate": 3599, "leaf": 3598}


def signer_dir(config: str | os.PathLike[str] | None = None) -> Path:
    """Where the site's signing chain lives: ``signer_dir`` of the DCP config, else $DELIVER_HOME/dcp-signer."""
    configured = read_dcp_config(config).get("signer_dir")
    return Path(os.path.expandvars(os.path.expanduser(configured))) if configured else deliver_home() / "dcp-signer"


def dn_qualifier(public_key: rsa.RSAPublicKey) -> str:
    """ST 430-2 §5.3.1: base64 of the SHA-1 of the PKCS#1 DER subject public key."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return base64.b64encode(hashlib.sha1(der).digest()).decode()


def issuer_name(cert: x509.Certificate) -> str:
    """The issuer DN as RFC 4514 text with dnQualifier spelled out (what X509IssuerName carries)."""
    return cert.issuer.rfc4514_string({NameOID.DN_QUALIFIER: "dnQualifier"})


def _name(org: str, cn: str, key: rsa.RSAPublicKey) -> x509.Name:
    printable = x509.name._ASN1Type.PrintableString  # ST 430-2 §5.3: PrintableString attributes
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org, printable),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{org} DCP signing", printable),
        x509.NameAttribute(NameOID.COMMON_NAME, cn, printable),
        x509.NameAttribute(NameOID.DN_QUALIFIER, dn_qualifier(key), printable),
    ])


def _certificate(role: str, key: rsa.RSAPrivateKey, subject: x509.Name, issuer: x509.Name,
                 issuer_key: rsa.RSAPrivateKey, not_before: dt.datetime, path_length: int | None) -> x509.Certificate:
    ca = role != "leaf"
    usage = dict(digital_signature=not ca, content_commitment=False, key_encipherment=not ca,
                 data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                 decipher_only=False)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_before + dt.timedelta(days=_VALIDITY_DAYS[role]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
            .add_extension(x509.KeyUsage(**usage), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                           critical=False)
            .sign(issuer_key, hashes.SHA256()))


@dataclass(frozen=True)
class Signer:
    """The leaf key and the chain (leaf first). ``repr`` never shows the key."""

    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...]

    def __repr__(self) -> str:
        return f"Signer(subject={self.chain[0].subject.rfc4514_string()!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Never pickled: Prefect persists task parameters and results. Pass the signer folder instead.
        raise TypeError("a DCP Signer holds a private key and is never serialised; pass its folder instead")


def _write_private(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def ensure_signer(directory: Path | None = None, organisation: str = "deliver") -> Signer:
    """Load the site's chain, creating it (once) if the folder has none.

    The chain is written into a private temporary folder beside the final one and renamed into place, so a
    half-made chain is never seen and two runs starting at once end up sharing one chain.
    """
    d = Path(directory) if directory else signer_dir()
    if (d / "leaf.key").is_file():
        return load_signer(d)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.partial-", dir=d.parent))  # mode 0700
    try:
        signer = _make_chain(tmp, organisation)
        with contextlib.suppress(OSError):
            d.rmdir()  # an empty folder made beforehand (by hand or a config tool) is replaced
        try:
            os.rename(tmp, d)
        except OSError:  # another run won the race (or the folder holds other files): use what is there
            if (d / "leaf.key").is_file():
                return load_signer(d)
            raise BadInputError(f"{d} exists without a DCP signing chain; empty it or set signer_dir in "
                                "configs/dcp.yaml") from None
        return signer
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _make_chain(d: Path, organisation: str) -> Signer:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    keys = {role: rsa.generate_private_key(public_exponent=65537, key_size=2048)
            for role in ("root", "intermediate", "leaf")}
    names = {"root": _name(organisation, f".{organisation}.root", keys["root"].public_key()),
             "intermediate": _name(organisation, f".{organisation}.intermediate", keys["intermediate"].public_key()),
             "leaf": _name(organisation, f"CS.{organisation}.leaf", keys["leaf"].public_key())}
    root = _certificate("root", keys["root"], names["root"], names["root"], keys["root"], now, 2)
    inter = _certificate("intermediate", keys["intermediate"], names["intermediate"], names["root"], keys["root"],
                         now, 1)
    leaf = _certificate("leaf", keys["leaf"], names["leaf"], names["intermediate"], keys["intermediate"], now, None)
    for role, cert in (("root", root), ("intermediate", inter), ("leaf", leaf)):
        _write_private(d / f"{role}.key", keys[role])
        (d / f"{role}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Signer(keys["leaf"], (leaf, inter, root))


def load_signer(directory: Path | None = None) -> Signer:
    d = Path(directory) if directory else signer_dir()
    try:
        key = serialization.load_pem_private_key((d / "leaf.key").read_bytes(), password=None)
        chain = tuple(x509.load_pem_x509_certificate((d / f"{r}.pem").read_bytes())
                      for r in ("leaf", "intermediate", "root"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{d}: DCP signing chain unreadable ({exc}); remove the folder to make a new one") \
            from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadInputError(f"{d}/leaf.key is not an RSA key")
    return Signer(key, chain)


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


def _document_digest(root: etree._Element) -> str:
    """SHA-1 of the canonical document without its ds:Signature (enveloped-signature transform)."""
    copy = etree.fromstring(etree.tostring(root))
    for sig in copy.findall(f"{{{DSIG_NS}}}Signature"):
        tail = sig.tail
        parent = sig.getparent()
        prev = sig.getprevious()
        parent.remove(sig)
        if tail:  # keep the text that followed the signature, as the transform removes only the element
            if prev is not None:
                prev.tail = (prev.tail or "") + tail
            else:
                parent.text = (parent.text or "") + tail
    return base64.b64encode(hashlib.sha1(_c14n(copy)).digest()).decode()


def sign_xml(root: etree._Element, signer: Signer, ns: str) -> None:
    """Append ``Signer`` (in the document's namespace ``ns``) and an enveloped ``ds:Signature`` to ``root``."""
    leaf = signer.chain[0]
    ds = f"{{{DSIG_NS}}}"

    def issuer_serial(parent: etree._Element, cert: x509.Certificate) -> None:
        isr = etree.SubElement(parent, ds + "X509IssuerSerial")
        etree.SubElement(isr, ds + "X509IssuerName").text = issuer_name(cert)
        etree.SubElement(isr, ds + "X509SerialNumber").text = str(cert.serial_number)

    signer_el = etree.SubElement(root, f"{{{ns}}}Signer")
    issuer_serial(etree.SubElement(signer_el, ds + "X509Data"), leaf)
    sig = etree.SubElement(root, ds + "Signature")
    info = etree.SubElement(sig, ds + "SignedInfo")
    etree.SubElement(info, ds + "CanonicalizationMethod", Algorithm=C14N)
    etree.SubElement(info, ds + "SignatureMethod", Algorithm=RSA_SHA256)
    ref = etree.SubElement(info, ds + "Reference", URI="")
    etree.SubElement(etree.SubElement(ref, ds + "Transforms"), ds + "Transform", Algorithm=ENVELOPED)
    etree.SubElement(ref, ds + "DigestMethod", Algorithm=SHA1)
    digest = etree.SubElement(ref, ds + "DigestValue")
    value = etree.SubElement(sig, ds + "SignatureValue")
    key_info = etree.SubElement(sig, ds + "KeyInfo")
    for cert in signer.chain:
        data = etree.SubElement(key_info, ds + "X509Data")
        issuer_serial(data, cert)
        etree.SubElement(data, ds + "X509Certificate").text = base64.b64encode(
            cert.public_bytes(serialization.Encoding.DER)).decode()
    etree.indent(root, space="  ")
    digest.text = _document_digest(root)
    signature = signer.key.sign(_c14n(info), padding.PKCS1v15(), hashes.SHA256())
    value.text = base64.b64encode(signature).decode()


def verify_signature(path: Path) -> list[str]:
    """Problems with the enveloped signature of a signed CPL/PKL (empty when it verifies)."""
    root = etree.parse(str(path)).getroot()
    ds = {"ds": DSIG_NS}
    sig = root.find("ds:Signature", ds)
    if sig is None:
        return [f"{path.name}: not signed (no ds:Signature)"]
    problems = []
    digest = sig.findtext("ds:SignedInfo/ds:Reference/ds:DigestValue", namespaces=ds) or ""
    if digest != _document_digest(root):
        problems.append(f"{path.name}: signature digest does not match the document (edited after signing?)")
    certs = [x509.load_der_x509_certificate(base64.b64decode(t))
             for t in sig.xpath("ds:KeyInfo/ds:X509Data/ds:X509Certificate/text()", namespaces=ds)]
    if not certs:
        return [*problems, f"{path.name}: no certificate in KeyInfo"]
    info = sig.find("ds:SignedInfo", ds)
    try:
        pub = certs[0].public_key()
        assert isinstance(pub, rsa.RSAPublicKey)
        pub.verify(base64.b64decode(sig.findtext("ds:SignatureValue", namespaces=ds) or ""), _c14n(info),
                   padding.PKCS1v15(), hashes.SHA256())
    except Exception as exc:  # noqa: BLE001 - any failure (bad value, wrong key type) is an invalid signature
        problems.append(f"{path.name}: signature does not verify with the leaf certificate ({type(exc).__name__})")
    for child, parent in zip(certs, certs[1:], strict=False):
        try:
            child.verify_directly_issued_by(parent)
        except Exception:  # noqa: BLE001 - ValueError/InvalidSignature/TypeError all mean a broken chain
            problems.append(f"{path.name}: certificate {child.subject.rfc4514_string()} is not issued by the next one")
    for cert in certs:
        qual = cert.subject.get_attributes_for_oid(NameOID.DN_QUALIFIER)
        pub = cert.public_key()
        if not qual or not isinstance(pub, rsa.RSAPublicKey) or qual[0].value != dn_qualifier(pub):
            problems.append(f"{path.name}: dnQualifier of {cert.subject.rfc4514_string()} is not its key's SHA-1")
    return problems


def raise_on(problems: list[str]) -> None:
    if problems:
        raise VerificationError("; ".join(problems))
