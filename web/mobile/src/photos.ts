// Photos are shrunk on the phone before they are queued: a 12-megapixel picture is 4–8 MB, too
// much for a weak mobile link and for the phone's storage when many wait offline. The longest side
// becomes at most 1600 px, re-encoded as JPEG. (Drawing on a canvas also drops the EXIF block; the
// server strips it again anyway, whatever the client does.)

const MAX_SIDE = 1600;
const QUALITY = 0.85;

export async function shrink(file: Blob): Promise<Blob> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return file; // not decodable here: let the server decide (it answers 415 for non-images)
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * scale));
  const h = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  if (!ctx) return file;
  ctx.drawImage(bitmap, 0, 0, w, h);
  bitmap.close();
  const out = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/jpeg", QUALITY));
  return out ?? file;
}

/** A photo picker: a button, thumbnails, and the shrunk blobs. */
export class PhotoPicker {
  readonly el: HTMLElement;
  readonly blobs: Blob[] = [];
  private readonly thumbs: HTMLElement;
  private readonly input: HTMLInputElement;

  constructor(label: string, name: string) {
    this.el = document.createElement("div");
    this.el.className = "photos";
    this.input = document.createElement("input");
    this.input.type = "file";
    this.input.accept = "image/*";
    this.input.multiple = true;
    this.input.setAttribute("capture", "environment"); // the camera first, on phones
    this.input.name = name;
    this.input.className = "photo-input";
    const button = document.createElement("label");
    button.className = "photo-add";
    button.textContent = `＋ ${label}`;
    button.append(this.input);
    this.thumbs = document.createElement("div");
    this.thumbs.className = "thumbs";
    this.el.append(button, this.thumbs);
    this.input.addEventListener("change", () => void this.take());
  }

  private async take(): Promise<void> {
    const files = Array.from(this.input.files ?? []);
    this.input.value = "";
    for (const f of files) {
      const blob = await shrink(f);
      this.blobs.push(blob);
      const img = document.createElement("img");
      img.src = URL.createObjectURL(blob);
      img.alt = "";
      this.thumbs.append(img);
    }
    this.el.dataset.count = String(this.blobs.length);
  }

  clear(): void {
    this.blobs.length = 0;
    this.thumbs.replaceChildren();
    this.el.dataset.count = "0";
  }
}
