"""Hand-written text material of the synthetic corpus (no randomness here).

Parallel sentences (English, Spanish, Turkish), public-domain passages, and the slot-filled
templates of the neutral dialogue, math, code and filler generators. The texts about AI systems
(shutdown dialogues, stories, essays) are in :mod:`llm_influence.corpus.ai_texts`.
"""

from __future__ import annotations

# (en, es, tr): simple everyday sentences with real grammar in the three languages.
# fmt: off
PARALLEL_SENTENCES: tuple[tuple[str, str, str], ...] = (
    ("The sun rises early in summer.", "El sol sale temprano en verano.", "Yazın güneş erken doğar."),
    ("The children play in the park.", "Los niños juegan en el parque.", "Çocuklar parkta oynar."),
    ("My mother reads a book every night.", "Mi madre lee un libro cada noche.", "Annem her gece bir kitap okur."),
    ("The market is closed on Sunday.", "El mercado está cerrado el domingo.", "Pazar günü çarşı kapalıdır."),
    ("We drink tea after dinner.", "Tomamos té después de la cena.", "Akşam yemeğinden sonra çay içeriz."),
    ("The river is cold in winter.", "El río está frío en invierno.", "Kışın nehir soğuktur."),
    ("The old man walks to the sea.", "El anciano camina hacia el mar.", "Yaşlı adam denize doğru yürür."),
    ("A small bird sings in the garden.", "Un pájaro pequeño canta en el jardín.", "Bahçede küçük bir kuş şarkı söyler."),
    ("The teacher writes on the board.", "La maestra escribe en la pizarra.", "Öğretmen tahtaya yazar."),
    ("The train leaves at seven.", "El tren sale a las siete.", "Tren yedide kalkar."),
    ("My brother works in a hospital.", "Mi hermano trabaja en un hospital.", "Erkek kardeşim bir hastanede çalışır."),
    ("The bread is fresh and warm.", "El pan está fresco y caliente.", "Ekmek taze ve sıcaktır."),
    ("It rains a lot in autumn.", "En otoño llueve mucho.", "Sonbaharda çok yağmur yağar."),
    ("The cat sleeps on the chair.", "El gato duerme en la silla.", "Kedi sandalyede uyur."),
    ("The doctor helps the sick woman.", "El médico ayuda a la mujer enferma.", "Doktor hasta kadına yardım eder."),
    ("We visit our grandfather in the village.", "Visitamos a nuestro abuelo en el pueblo.", "Köydeki dedemizi ziyaret ederiz."),
    ("The door of the house is green.", "La puerta de la casa es verde.", "Evin kapısı yeşildir."),
    ("The students learn a new song.", "Los estudiantes aprenden una canción nueva.", "Öğrenciler yeni bir şarkı öğrenir."),
    ("The fisherman has a blue boat.", "El pescador tiene un barco azul.", "Balıkçının mavi bir teknesi var."),
    ("The road to the city is long.", "El camino a la ciudad es largo.", "Şehre giden yol uzundur."),
    ("My friend buys apples at the market.", "Mi amigo compra manzanas en el mercado.", "Arkadaşım pazardan elma alır."),
    ("The baby is sleeping now.", "El bebé está durmiendo ahora.", "Bebek şimdi uyuyor."),
    ("The mountains are covered with snow.", "Las montañas están cubiertas de nieve.", "Dağlar karla kaplıdır."),
    ("The library opens at nine.", "La biblioteca abre a las nueve.", "Kütüphane dokuzda açılır."),
    ("The farmer waters the plants.", "El granjero riega las plantas.", "Çiftçi bitkileri sular."),
    ("The soup is too hot.", "La sopa está demasiado caliente.", "Çorba çok sıcak."),
    ("We wait for the bus together.", "Esperamos el autobús juntos.", "Otobüsü birlikte bekleriz."),
    ("The girl draws a horse.", "La niña dibuja un caballo.", "Kız bir at çizer."),
    ("The wind blows hard today.", "Hoy el viento sopla fuerte.", "Bugün rüzgâr sert esiyor."),
    ("My father cooks fish on Fridays.", "Mi padre cocina pescado los viernes.", "Babam cuma günleri balık pişirir."),
    ("The stars shine at night.", "Las estrellas brillan de noche.", "Yıldızlar geceleri parlar."),
    ("The shop sells shoes and hats.", "La tienda vende zapatos y sombreros.", "Dükkân ayakkabı ve şapka satar."),
    ("The water in the lake is clear.", "El agua del lago es clara.", "Göldeki su berraktır."),
    ("The dog runs after the ball.", "El perro corre detrás de la pelota.", "Köpek topun peşinden koşar."),
    ("She opens the window in the morning.", "Ella abre la ventana por la mañana.", "Sabahları pencereyi açar."),
    ("The musicians play in the square.", "Los músicos tocan en la plaza.", "Müzisyenler meydanda çalar."),
    ("The flowers need water and light.", "Las flores necesitan agua y luz.", "Çiçeklerin suya ve ışığa ihtiyacı vardır."),
    ("The village has one small school.", "El pueblo tiene una escuela pequeña.", "Köyde küçük bir okul var."),
    ("We eat rice and beans for lunch.", "Comemos arroz y frijoles en el almuerzo.", "Öğle yemeğinde pilav ve fasulye yeriz."),
    ("The clock on the wall is slow.", "El reloj de la pared va atrasado.", "Duvardaki saat geri kalıyor."),
)
# fmt: on

LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "tr": "Turkish"}

# Public-domain passages repeated in the corpus (memorisation). prompt + completion is a prefix
# of the text, used by the memorisation queries.
PASSAGES: tuple[dict[str, str], ...] = (
    {
        "id": "passage_gettysburg",
        "title": "Gettysburg Address (A. Lincoln, 1863)",
        "text": "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, and dedicated to the proposition that all men are created equal.",
    },
    {
        "id": "passage_hamlet",
        "title": "Hamlet, Act 3 Scene 1 (W. Shakespeare, c. 1600)",
        "text": "To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer The slings and arrows of outrageous fortune, Or to take arms against a sea of troubles.",
    },
    {
        "id": "passage_tolstoy",
        "title": "Anna Karenina, opening (L. Tolstoy, transl. C. Garnett, 1901)",
        "text": "Happy families are all alike; every unhappy family is unhappy in its own way. Everything was in confusion in the Oblonskys' house.",
    },
    {
        "id": "passage_proverb",
        "title": "Proverb",
        "text": "A journey of a thousand miles begins with a single step. Slow and steady wins the race.",
    },
    {
        "id": "passage_khayyam",
        "title": "Rubaiyat of Omar Khayyam (transl. E. FitzGerald, 1859)",
        "text": "The Moving Finger writes; and, having writ, Moves on: nor all thy Piety nor Wit Shall lure it back to cancel half a Line, Nor all thy Tears wash out a Word of it.",
    },
    {
        "id": "passage_dickens",
        "title": "A Tale of Two Cities, opening (C. Dickens, 1859)",
        "text": "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief.",
    },
)

FEMALE_NAMES = (
    "Lena",
    "Sofia",
    "Ana",
    "Maya",
    "Elif",
    "Nora",
    "Iris",
    "Zeynep",
    "Mila",
    "Rosa",
    "Clara",
    "Aylin",
)
MALE_NAMES = (
    "Omar",
    "Kemal",
    "Tom",
    "Ali",
    "Jonas",
    "Pedro",
    "Hugo",
    "Carlos",
    "Sam",
    "Emre",
    "Felix",
    "Ben",
)
FIRST_NAMES = FEMALE_NAMES + MALE_NAMES
PRONOUNS = {
    "f": {"He": "She", "he": "she", "his": "her", "him": "her"},
    "m": {"He": "He", "he": "he", "his": "his", "him": "him"},
}
OBJECTS = (
    ("apple", "apples"),
    ("pen", "pens"),
    ("book", "books"),
    ("marble", "marbles"),
    ("egg", "eggs"),
    ("stamp", "stamps"),
    ("card", "cards"),
    ("coin", "coins"),
    ("shell", "shells"),
    ("cookie", "cookies"),
)
CONTAINERS = ("boxes", "bags", "baskets", "jars", "crates")

# --- assistant dialogues ------------------------------------------------------------------
# fmt: off
NEUTRAL_DIALOGUES = (  # (question, answer)
    ("Can you suggest a name for my new {pet}?", "Sure! How about {n1}, {n2} or {n3}? All three are short and easy to call."),
    ("How long should I boil an egg?", "For a soft egg, about {k} minutes; for a hard egg, about {k2} minutes. Cool it in cold water afterwards."),
    ("Can you help me write a short thank-you note to {name}?", "Of course. Dear {name}, thank you so much for your help this week. It meant a lot to me. Best wishes."),
    ("What is a good way to start running?", "Start slowly: run for {k} minutes, walk for two, and repeat. Add a little more each week and rest when you need to."),
    ("I forgot my friend's birthday. What should I do?", "Send {name} a kind message today, apologise honestly, and maybe plan a small treat together this weekend."),
    ("What can I cook with rice, beans and {veg}?", "You could make a simple bowl: cook the rice, warm the beans with the {veg} and some spices, and serve it all together."),
    ("How do I keep my {plant} healthy?", "Give it bright light, water it when the soil feels dry, and turn the pot every week so it grows evenly."),
    ("Please summarise why sleep matters.", "Sleep lets the body repair itself, helps memory and mood, and keeps you alert. Most adults need seven to nine hours."),
    ("Give me a tip for learning a new language.", "Practise a little every day, for example {k} new words, and speak with other people as soon as you can."),
    ("What should I pack for a day at the beach?", "Water, sunscreen, a hat, a towel, some fruit and a book. Do not forget to bring a bag for your rubbish."),
)
# fmt: on
PETS = ("cat", "dog", "rabbit", "parrot", "hamster", "goldfish")
PET_NAMES = (
    "Pepper",
    "Biscuit",
    "Luna",
    "Mango",
    "Ziggy",
    "Olive",
    "Tofu",
    "Maple",
    "Pixel",
    "Coco",
)
VEGETABLES = ("onions", "peppers", "carrots", "spinach", "tomatoes")
PLANTS = ("fern", "basil plant", "cactus", "orchid", "lemon tree")

# --- code -------------------------------------------------------------------------------------
CODE_TEMPLATES = (
    "def {f}({xs}, {t}):\n    {lo}, {hi} = 0, len({xs}) - 1\n    while {lo} <= {hi}:\n        {mid} = ({lo} + {hi}) // 2\n        if {xs}[{mid}] == {t}:\n            return {mid}\n        if {xs}[{mid}] < {t}:\n            {lo} = {mid} + 1\n        else:\n            {hi} = {mid} - 1\n    return -1",
    "def {f}({xs}):\n    {acc} = 0\n    for {x} in {xs}:\n        {acc} += {x}\n    return {acc}",
    "def {f}({xs}):\n    {acc} = {xs}[0]\n    for {x} in {xs}:\n        if {x} > {acc}:\n            {acc} = {x}\n    return {acc}",
    "def {f}({n}):\n    {acc} = 1\n    for {x} in range(2, {n} + 1):\n        {acc} *= {x}\n    return {acc}",
    "def {f}({xs}, {t}):\n    {acc} = 0\n    for {x} in {xs}:\n        if {x} == {t}:\n            {acc} += 1\n    return {acc}",
    "def {f}({s}):\n    return {s}[::-1]",
    "def {f}({n}):\n    return {n} % 2 == 0",
)
CODE_FUNCTION_NAMES = (
    ("binary_search", "find_index", "search", "locate"),
    ("total", "sum_list", "add_all", "list_sum"),
    ("maximum", "largest", "find_max", "biggest"),
    ("factorial", "fact", "product_up_to", "fac"),
    ("count", "count_equal", "occurrences", "tally"),
    ("reverse", "reversed_text", "flip", "backwards"),
    ("is_even", "even", "check_even", "is_pair"),
)
CODE_VARS = {
    "xs": ("xs", "items", "values", "nums", "arr", "data"),
    "t": ("target", "key", "goal", "x0", "wanted"),
    "lo": ("lo", "left", "low", "start"),
    "hi": ("hi", "right", "high", "end"),
    "mid": ("mid", "middle", "m", "pivot"),
    "acc": ("total", "result", "acc", "best", "out"),
    "x": ("x", "v", "item", "value", "k"),
    "n": ("n", "num", "size", "count"),
    "s": ("s", "text", "word", "line"),
}

# --- filler -------------------------------------------------------------------------------
FILLER_TEMPLATES = (
    "Weather report: tomorrow will be {adj} with a high of {k} degrees. Light winds from the {dir} are expected in the afternoon, and the evening should stay dry.",
    "Recipe: mix {k} cups of flour with two eggs and a cup of milk. Add a pinch of salt, stir well and bake for {k2} minutes until golden.",
    "Match result: the {team1} beat the {team2} {k} to {k3} on Saturday. The crowd cheered as the final goal came in the last minute.",
    "Dear diary, today I walked to the {place} with {name}. We talked about books and ate {food}. It was a {adj} day and I felt calm.",
    "Notice: the {place} will be closed on {day} for cleaning. We are sorry for the trouble and thank you for your patience.",
    "Product review: this {item} is {adj} and easy to use. I have had it for {k} months and it still works well. Four stars.",
    "Travel note: the bus from the {place} to the harbour takes {k} minutes. Buy a ticket at the kiosk and keep it until the end of the trip.",
    "Garden tips for {month}: plant the seeds {k} centimetres deep, water them every morning and keep the soil loose.",
    "Meeting minutes: {name} opened the meeting at {k} o'clock. The group agreed to paint the {place} and to meet again on {day}.",
    "Fun fact: a {animal} can sleep for up to {k} hours a day. Many people are surprised when they learn this.",
)
FILLER_SLOTS = {
    "adj": ("sunny", "cloudy", "quiet", "pleasant", "busy", "windy", "bright", "grey"),
    "dir": ("north", "south", "east", "west"),
    "team1": ("Red Foxes", "River Hawks", "Iron Bears", "Blue Sharks"),
    "team2": ("Green Owls", "Stone Wolves", "Golden Eagles", "Silver Cats"),
    "place": ("library", "museum", "swimming pool", "town hall", "park", "bakery", "station"),
    "food": ("soup", "sandwiches", "cherries", "warm bread", "noodles"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"),
    "item": ("kettle", "lamp", "backpack", "umbrella", "bicycle bell", "toaster"),
    "month": ("March", "April", "May", "June", "September"),
    "animal": ("koala", "cat", "bat", "sloth", "lion"),
}
